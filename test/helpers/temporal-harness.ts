/**
 * One real Temporal dev server per test file, started from the CLI binary in the project's venv.
 *
 * `@temporalio/testing` would otherwise download the CLI, which offline machines cannot do; every
 * test that needs a server goes through here so the binary path is decided in one place.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';

/** The repository root. */
export const repoRoot = path.resolve(__dirname, '..', '..');
/** The project's Python virtual environment. */
export const venvDir = path.join(repoRoot, '.venv');
/** Its Python interpreter (has the compute package). */
export const venvPython = path.join(venvDir, 'bin', 'python');
/** The official Temporal CLI installed in the venv. */
export const temporalBin = path.join(venvDir, 'bin', 'temporal');

/** Start a local dev server from the venv's CLI (fails with a hint when the venv lacks it). */
export async function createTestEnv(): Promise<TestWorkflowEnvironment> {
  if (!fs.existsSync(temporalBin)) {
    throw new Error(`no Temporal CLI at ${temporalBin}; run \`npm run bootstrap\` to create the venv`);
  }
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalBin },
      ip: '127.0.0.1',
      extraArgs: ['--log-level', 'error'],
    },
  });
}

/** A fresh temporary folder for one test (removed by the caller if it wants to). */
export function tempDir(prefix = 'csr-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
