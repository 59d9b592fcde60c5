/** `csr run`: validate a config, start a CSR run workflow, optionally follow it to the end. */
import * as crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { WorkflowIdReusePolicy } from '@temporalio/client';
import { loadConfig, type CsrConfig } from '../../src/config';
import { ensureSearchAttributes } from '../../src/client/search-attributes';
import { connectClient } from '../../src/client/temporal';
import { repoRoot } from '../../src/env';
import type { CsrRunInput } from '../../src/shared/run-types';
import { runSearchAttributes } from '../../src/shared/search-attributes';
import { CPU_QUEUE } from '../../src/shared/task-queues';
import { followRun } from './follow';

/** sha256 of the resolved config: stable across key order, part of every artifact key. */
export function configHash(config: CsrConfig): string {
  const canonical = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(canonical)
      : value && typeof value === 'object'
        ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]))
        : value;
  return crypto.createHash('sha256').update(JSON.stringify(canonical(config))).digest('hex');
}

/** The git commit of this checkout (with `-dirty` when it has changes), or `unknown`. */
export function codeVersion(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot, encoding: 'utf8' });
    return dirty.trim() ? `${commit}-dirty` : commit;
  } catch {
    return 'unknown';
  }
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..+$/, '').replace('T', '-');
}

/** The first input of a new run. */
export function newRunInput(config: CsrConfig, configFile: string): CsrRunInput {
  const hash = configHash(config);
  return {
    config,
    configHash: hash,
    runKey: `${config.name}-${hash.slice(0, 8)}-${timestamp()}`,
    configFile: path.relative(repoRoot, path.resolve(configFile)),
    nextIteration: 0,
    history: [],
    codeVersion: codeVersion(),
  };
}

/** Start a run; returns its workflow id. */
export async function startRun(input: CsrRunInput, workflowId = input.runKey): Promise<string> {
  const client = await connectClient();
  // Filterable in the Temporal UI (config, iteration, objective) when the server has the attributes.
  const searchAttributes = await ensureSearchAttributes(client);
  await client.workflow.start('csrRun', {
    taskQueue: CPU_QUEUE,
    workflowId,
    args: [searchAttributes ? { ...input, searchAttributes } : input],
    ...(searchAttributes
      ? { typedSearchAttributes: runSearchAttributes(input.config.name, input.history[input.history.length - 1], input.config.evaluate.objective) }
      : {}),
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    memo: { configFile: input.configFile ?? '', runKey: input.runKey },
    // The Temporal UI's line for the run (its first segment; each iteration's workflow has its own).
    staticSummary:
      `CSR run of ${input.config.name}: ${input.overrides?.iterations ?? input.config.iterations} iterations` +
      (input.resumedFrom ? `, resuming ${input.resumedFrom}` : ''),
  });
  return workflowId;
}

export async function runCommand(options: { config: string; wait?: boolean; json?: boolean }): Promise<number> {
  const config = loadConfig(options.config); // a ConfigError exits 2 before anything starts
  const input = newRunInput(config, options.config);
  const workflowId = await startRun(input);
  console.log(`started run ${workflowId} (${config.iterations} iterations of ${config.name})`);
  if (!options.wait) {
    console.log(`follow it with: npx csr status ${workflowId}`);
    return 0;
  }
  return followRun(workflowId);
}
