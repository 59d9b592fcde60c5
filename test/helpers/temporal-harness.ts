/**
 * One real Temporal dev server per test file, started from the CLI binary in the project's venv.
 *
 * `@temporalio/testing` would otherwise download the CLI, which offline machines cannot do; every
 * test that needs a server goes through here so the binary path is decided in one place.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { type Payload, defaultPayloadConverter } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { type LogLevel, Runtime } from '@temporalio/worker';
import { QuietLogger } from '../../workers/quiet-logger';
import { CSR_SEARCH_ATTRIBUTES } from '../../src/shared/search-attributes';

/** The repository root. */
export const repoRoot = path.resolve(__dirname, '..', '..');
/** The project's Python virtual environment. */
export const venvDir = path.join(repoRoot, '.venv');
/** Its Python interpreter (has the compute package). */
export const venvPython = path.join(venvDir, 'bin', 'python');
/** The official Temporal CLI installed in the venv. */
export const temporalBin = path.join(venvDir, 'bin', 'temporal');

/** The workflows of the activity and worker tests. */
export const testWorkflowsPath = require.resolve('../workflows/compute-step-workflows');

/**
 * Start a local dev server from the venv's CLI (fails with a hint when the venv lacks it). The SDK's
 * own log is cut to `logLevel` so test output shows the failures, not every worker state change.
 */
export async function createTestEnv(logLevel: LogLevel = 'WARN'): Promise<TestWorkflowEnvironment> {
  try {
    Runtime.install({ logger: new QuietLogger(logLevel) });
  } catch {
    // Already installed in this process (a second environment): keep the first one's settings.
  }
  if (!fs.existsSync(temporalBin)) {
    throw new Error(`no Temporal CLI at ${temporalBin}; run \`npm run bootstrap\` to create the venv`);
  }
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalBin },
      ip: '127.0.0.1',
      // No banner and no start-up noise ("Frontend is not healthy yet"): a server that fails shows as a refused connection.
      extraArgs: ['--log-level', 'never', '--output', 'none'],
      // As the embedded stack registers them, so runs started with `searchAttributes` can upsert them.
      searchAttributes: CSR_SEARCH_ATTRIBUTES,
    },
  });
}

/** A fresh temporary folder for one test (removed by the caller if it wants to). */
export function tempDir(prefix = 'csr-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Heartbeat details and attempt of a workflow's pending activities, decoded (the raw describe() has payloads). */
export async function pendingActivities(
  handle: WorkflowHandle,
): Promise<Array<{ activityType: string; attempt: number; details: unknown }>> {
  const description = await handle.describe();
  return (description.raw.pendingActivities ?? []).map((pending) => {
    const payload = pending.heartbeatDetails?.payloads?.[0];
    return {
      activityType: pending.activityType?.name ?? '',
      attempt: pending.attempt ?? 0,
      details: payload ? defaultPayloadConverter.fromPayload(payload as Payload) : undefined,
    };
  });
}

/** Poll `probe` every 100 ms until it returns a value that is not undefined; fail after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A `python` for the compute activity that first forks a long-lived member into its own process
 * group (what torch data-loader workers do) and then runs the venv's real Python. Each forked pid is
 * appended to `membersFile`, so a test can check the whole group died, not just the leader.
 */
export function forkingPython(dir: string): { python: string; membersFile: string } {
  const python = path.join(dir, 'forking-python');
  const membersFile = path.join(dir, 'group-members.txt');
  fs.writeFileSync(
    python,
    `#!/bin/sh\nsleep 300 &\necho $! >> ${JSON.stringify(membersFile)}\nexec ${JSON.stringify(venvPython)} "$@"\n`,
    { mode: 0o755 },
  );
  return { python, membersFile };
}

/** The pids `forkingPython` recorded so far. */
export function forkedMembers(membersFile: string): number[] {
  if (!fs.existsSync(membersFile)) return [];
  return fs.readFileSync(membersFile, 'utf8').split('\n').filter(Boolean).map(Number);
}
