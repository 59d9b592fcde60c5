/**
 * `csr sweep`: plan a grid of runs (every cell validated before anything starts), start the sweep
 * workflow, and with `--wait` follow it to the end and print its table (`--json`: the table as JSON
 * on stdout, progress on stderr). `--resume-from ID` (or `csr resume ID`) starts the sweep ID again
 * under its own key, so every child run skips the steps it finished.
 */
import type { Client } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/client';
import { connectClient } from '../../../src/client/temporal';
import { ensureSearchAttributes } from '../../../src/client/search-attributes';
import { quickQuery } from '../../../src/client/progress';
import type { SweepInput, SweepResult, SweepStatus } from '../../../src/shared/sweep-types';
import { CPU_QUEUE } from '../../../src/shared/task-queues';
import { uiLinks } from '../output';
import { codeVersion } from '../run-command';
import { GridError } from './grid';
import { planSweep } from './plan';
import { checkSweepInput } from './resume-check';
import { sweepTableText } from './output';

/** Options of `csr sweep`. */
export interface SweepCommandOptions {
  config?: string;
  grid?: string[];
  seeds?: number;
  maxParallel?: number;
  wait?: boolean;
  json?: boolean;
  resumeFrom?: string;
  /** Columns of the printed table. @default the objective and the headline metrics */
  metrics?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Start a sweep workflow; its id is the sweep key (a resumed sweep's adds `-resume-<time>`). */
export async function startSweep(client: Client, input: SweepInput, workflowId = input.sweepKey): Promise<string> {
  // Each cell's run upserts the CSR search attributes (config, iteration, objective) when the server has them.
  if (await ensureSearchAttributes(client)) input = { ...input, runs: input.runs.map((run) => ({ ...run, input: { ...run.input, searchAttributes: true } })) };
  await client.workflow.start('csrSweep', {
    taskQueue: CPU_QUEUE,
    workflowId,
    args: [input],
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    memo: { configFile: input.configFile ?? '', sweepKey: input.sweepKey },
  });
  return workflowId;
}

/** The input a sweep workflow was started with. */
export async function sweepInputOf(client: Client, workflowId: string): Promise<SweepInput> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`sweep ${workflowId} has no start input to resume from`);
  return client.options.loadedDataConverter.payloadConverter.fromPayload<SweepInput>(payload as never);
}

/** Resume sweep `id`: same key, so every run finds its finished steps; returns the new workflow id. */
export async function resumeSweep(client: Client, id: string, maxParallel?: number): Promise<string> {
  // Every cell's config against today's schema, its recorded hash and the grid (a ConfigError: exit 2, one line per problem).
  const old = checkSweepInput(await sweepInputOf(client, id), id);
  const version = codeVersion();
  const input: SweepInput = {
    ...old,
    runs: old.runs.map((run) => ({ ...run, input: { ...run.input, codeVersion: version } })),
    resumedFrom: id,
    codeVersion: version,
    ...(maxParallel ? { maxParallel } : {}),
  };
  return startSweep(client, input, `${old.sweepKey}-resume-${Date.now().toString(36)}`);
}

/** Poll the sweep until it closes, printing each run's state changes; returns its result or throws its failure. */
export async function followSweep(client: Client, workflowId: string, log: (line: string) => void): Promise<SweepResult> {
  const handle = client.workflow.getHandle(workflowId);
  const seen = new Map<string, string>();
  let lastPhase = '';
  for (;;) {
    const status = await quickQuery<SweepStatus>(client, workflowId, 'sweepStatus');
    const time = new Date().toISOString().slice(11, 19);
    if (status && status.phase !== lastPhase) {
      log(`[${time}] sweep: ${status.phase}`);
      lastPhase = status.phase;
    }
    for (const run of status?.runs ?? []) {
      if (seen.get(run.workflowId) === run.state) continue;
      seen.set(run.workflowId, run.state);
      if (run.state === 'pending') continue;
      const computed = run.computedByIteration ? ` (items computed per iteration: ${run.computedByIteration.join(', ')})` : '';
      log(`[${time}] cell ${run.cell} seed ${run.seed}: ${run.state}${run.failure ? `: ${run.failure}` : computed}  ${run.workflowId}`);
    }
    const { status: state } = await handle.describe();
    if (state.name !== 'RUNNING') break;
    await sleep(3000);
  }
  return (await handle.result()) as SweepResult;
}

/** Print the result: the table (or JSON), failed runs, links; the exit code. */
function report(result: SweepResult, workflowId: string, options: SweepCommandOptions): number {
  const failed = result.runs.filter((run) => run.state === 'failed');
  const log = options.json ? (line: string) => console.error(line) : (line: string) => console.log(line);
  if (options.json) console.log(JSON.stringify(result.table));
  else console.log(sweepTableText(result, options.metrics?.split(',').filter(Boolean)));
  for (const run of failed) log(`failed: cell ${run.cell} seed ${run.seed} (${run.workflowId}): ${run.failure ?? 'unknown'}`);
  if (result.mlflowParentRunId) log(`MLflow sweep run ${result.mlflowParentRunId}: artifacts sweep/table.csv, sweep/table.png`);
  for (const line of uiLinks(workflowId)) log(line);
  return failed.length > 0 ? 1 : 0;
}

/** Follow a started sweep to its end when asked (`--json` implies waiting: the table is the output). */
export async function waitForSweep(client: Client, workflowId: string, options: SweepCommandOptions): Promise<number> {
  const log = options.json ? (line: string) => console.error(line) : (line: string) => console.log(line);
  if (!options.wait && !options.json) {
    log(`its table goes to the MLflow run ${workflowId.replace(/-resume-[0-9a-z]+$/, '')} when it ends; after a failure: npx csr resume ${workflowId}`);
    for (const line of uiLinks(workflowId)) log(line);
    return 0;
  }
  let result: SweepResult;
  try {
    result = await followSweep(client, workflowId, log);
  } catch (error) {
    const cause = (error as Error).cause instanceof Error ? `: ${((error as Error).cause as Error).message}` : '';
    console.error(`sweep ${workflowId} failed${cause || `: ${(error as Error).message}`}`);
    console.error(`resume it with: npx csr resume ${workflowId}`);
    return 1;
  }
  return report(result, workflowId, options);
}

export async function sweepCommand(options: SweepCommandOptions): Promise<number> {
  const log = options.json ? (line: string) => console.error(line) : (line: string) => console.log(line);
  if (options.resumeFrom) {
    const client = await connectClient();
    const workflowId = await resumeSweep(client, options.resumeFrom, options.maxParallel);
    log(`started ${workflowId}, reusing the finished work of sweep ${options.resumeFrom}`);
    return waitForSweep(client, workflowId, options);
  }
  if (!options.config || !options.grid?.length || options.seeds === undefined) {
    console.error('csr sweep: expected --config FILE, at least one --grid KEY=V1,V2 and --seeds N (or --resume-from ID)');
    return 2;
  }
  let input: SweepInput;
  try {
    input = planSweep({ config: options.config, grid: options.grid, seeds: options.seeds, maxParallel: options.maxParallel, codeVersion: codeVersion() });
  } catch (error) {
    if (!(error instanceof GridError)) throw error; // a ConfigError (the file itself) exits 2 in main
    for (const line of error.problems) console.error(line);
    return 2;
  }
  const client = await connectClient();
  const workflowId = await startSweep(client, input);
  log(
    `started sweep ${workflowId}: ${input.cells.length} cells x ${input.seeds.length} seeds (${input.seeds.join(', ')}) = ${input.runs.length} runs` +
      `, iteration 0 computed ${input.baselines.length === 1 ? 'once' : `${input.baselines.length} times`}`,
  );
  return waitForSweep(client, workflowId, options);
}
