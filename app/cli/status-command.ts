/** `csr status ID` (a run or a sweep) and `csr list` (runs and sweeps): where they stand. */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { connectClient } from '../../src/client/temporal';
import { chainTimes, quickQuery, viewRun, type RunView } from '../../src/client/progress';
import type { RunStatus, StepSummary } from '../../src/shared/run-types';
import type { SweepResult, SweepStatus } from '../../src/shared/sweep-types';
import { progressText, stepName } from './follow';
import { clock, iterationWallTime, summaryTable } from './summary-table';
import { mlflowRunRefs, startLine, table, uiLinks } from './output';
import { sweepTableText } from './sweep/output';

/** One step's state and item counts, in the snake_case names of the step manifests. */
function stepCounts(s: StepSummary) {
  return {
    step: s.step,
    label: s.label,
    state: s.state,
    items_total: s.itemsTotal,
    items_reused: s.itemsReused,
    items_computed: s.itemsComputed,
    wall_seconds: s.wallSeconds,
  };
}

/** The machine-readable status: state, iterations, each step's item counts, latest eval metrics. */
export function statusJson(view: RunView) {
  const history = view.run?.history ?? [];
  const latest = [...history].reverse().find((h) => Object.keys(h.metrics).length > 0);
  return {
    workflowId: view.workflowId,
    state: view.run?.phase ?? view.status.toLowerCase(),
    temporalStatus: view.status,
    startTime: view.startTime,
    closeTime: view.closeTime,
    failure: view.failure,
    resumedFrom: view.run?.resumedFrom,
    iterations: view.run?.iterations,
    currentIteration: view.run?.currentIteration,
    currentStep: view.iteration?.currentStep,
    paused: view.run?.paused ?? false,
    objective: view.run?.objective,
    objectiveDirection: view.run?.objectiveDirection,
    history: history.map((h) => ({
      iteration: h.iteration,
      model: h.model,
      improved: h.improved,
      wallTime: iterationWallTime(h),
      steps: h.steps.map(stepCounts),
      metrics: h.metrics,
      stats: h.stats,
    })),
    inProgress: view.iteration
      ? {
          iteration: view.iteration.iteration,
          steps: view.iteration.steps.map(stepCounts),
          activities: view.activities,
        }
      : undefined,
    latestEvalMetrics: latest ? { iteration: latest.iteration, metrics: latest.metrics } : undefined,
  };
}

/** One table of every step of every iteration the view knows: state, items total / reused / computed, time. */
export function stepsTable(view: RunView): string | undefined {
  const rows = [
    ...(view.run?.history ?? []).flatMap((h) => h.steps.map((s) => ({ iteration: h.iteration, s }))),
    ...(view.iteration?.steps ?? []).map((s) => ({ iteration: view.iteration!.iteration, s })),
  ];
  if (rows.length === 0) return undefined;
  return table([
    ['iter', 'step', 'state', 'total', 'reused', 'computed', 'time'],
    ...rows.map(({ iteration, s }) => [
      String(iteration),
      stepName(s.step, s.label),
      s.state === 'skipped' ? 'reused' : s.state,
      String(s.itemsTotal ?? '-'),
      String(s.itemsReused ?? '-'),
      String(s.itemsComputed ?? '-'),
      clock(s.wallSeconds),
    ]),
  ]);
}

export async function statusCommand(id: string, options: { json?: boolean; wide?: boolean }): Promise<number> {
  const client = await connectClient();
  const description = await client.workflow.getHandle(id).describe();
  if (description.type === 'csrSweep') return sweepStatus(client, id, options);
  const view = await viewRun(client, id, { chain: true });
  if (options.json) {
    console.log(JSON.stringify(statusJson(view), null, 2));
    return 0;
  }
  const run = view.run;
  console.log(`run ${id}: ${run?.phase ?? view.status.toLowerCase()}${run?.paused ? ' (paused)' : ''}`);
  const started = startLine(view);
  if (started) console.log(started);
  if (run?.resumedFrom) console.log(`resumed from ${run.resumedFrom}`);
  if (view.failure) console.log(`failure: ${view.failure}`);
  if (run) console.log(`iteration ${run.currentIteration ?? '-'} of ${run.iterations}${view.iteration?.currentStep ? `, step: ${view.iteration.currentStep}` : ''}`);
  const steps = stepsTable(view);
  if (steps) console.log(steps);
  for (const a of view.activities) {
    if (a.total == null) continue;
    console.log(`  running: iter ${view.iteration?.iteration ?? run?.currentIteration ?? '-'} ${stepName(a.step, a.label)} ${progressText(a)}`);
  }
  if (run?.history.length) {
    console.log('');
    console.log(summaryTable(run.history, { objective: run.objective, direction: run.objectiveDirection, wide: options.wide }));
  }
  if (view.status === 'RUNNING') console.log(`follow it: npx csr follow ${id}`);
  for (const line of uiLinks(id, await mlflowRunRefs(run?.mlflow))) console.log(line);
  return 0;
}

/** `csr status SWEEP_ID`: the sweep's phase, each run's state and items computed per iteration, its table when done. */
async function sweepStatus(client: Client, id: string, options: { json?: boolean }): Promise<number> {
  const handle = client.workflow.getHandle(id);
  const description = await handle.describe();
  const status = await quickQuery<SweepStatus>(client, id, 'sweepStatus');
  let result: SweepResult | undefined;
  if (description.status.name === 'COMPLETED') result = (await handle.result()) as SweepResult;
  const runs = status?.runs ?? result?.runs ?? [];
  const chain = await chainTimes(client, id).catch(() => ({ start: undefined, close: undefined }));
  const startTime = (chain.start ?? description.startTime).toISOString();
  if (options.json) {
    const closeTime = description.closeTime?.toISOString();
    const json = { workflowId: id, kind: 'sweep', temporalStatus: description.status.name, phase: status?.phase, startTime, closeTime, runs };
    console.log(JSON.stringify({ ...json, table: result?.table }, null, 2));
    return 0;
  }
  console.log(`sweep ${id}: ${status?.phase ?? description.status.name.toLowerCase()}`);
  const started = startLine({ startTime, closeTime: description.closeTime?.toISOString(), status: description.status.name });
  if (started) console.log(started);
  if (runs.length) {
    console.log(
      table([
        ['cell', 'seed', 'state', 'items computed per iteration', 'run'],
        ...runs.map((r) => [String(r.cell), String(r.seed), r.state, r.computedByIteration?.join(' ') ?? '-', r.workflowId]),
      ]),
    );
  }
  for (const r of runs) if (r.failure) console.log(`failed: cell ${r.cell} seed ${r.seed}: ${r.failure}`);
  if (result) console.log(sweepTableText(result));
  console.log(`per-step counts of a run: npx csr status <run>`);
  for (const line of uiLinks(id)) console.log(line);
  return 0;
}

/** One row of `csr list`. */
interface ListRow {
  id: string;
  kind: 'run' | 'sweep' | 'sweep run';
  status: string;
  phase?: string;
  iteration?: string;
  start?: string;
  close?: string;
}

export async function listCommand(options: { json?: boolean; limit?: number }): Promise<number> {
  const client = await connectClient();
  const rows = new Map<string, ListRow>();
  const limit = options.limit ?? 50;
  let read = 0;
  for await (const execution of client.workflow.list({ query: "WorkflowType = 'csrRun' OR WorkflowType = 'csrSweep'" })) {
    if (++read > 20 * limit + 1000) break; // a crowded namespace: the listed runs' older segments are this far at most
    const start = execution.startTime.toISOString();
    const known = rows.get(execution.workflowId);
    if (known) {
      // Continue-as-new: the chain lists once, with its first segment's start (the list is newest first).
      if (!known.start || start < known.start) known.start = start;
      continue;
    }
    if (rows.size >= limit) continue; // keep reading: older segments of listed runs carry their true start
    rows.set(execution.workflowId, {
      id: execution.workflowId,
      kind: execution.type === 'csrSweep' ? 'sweep' : execution.parentExecution ? 'sweep run' : 'run',
      status: execution.status.name,
      start,
      close: execution.closeTime?.toISOString(),
    });
  }
  for (const row of rows.values()) {
    if (row.status !== 'RUNNING' || row.kind === 'sweep') continue;
    const status = await quickQuery<RunStatus>(client, row.id, 'runStatus');
    if (!status) {
      row.phase = 'no worker answers';
      continue;
    }
    row.phase = status.phase;
    row.iteration = `${status.currentIteration ?? '-'}/${status.iterations}`;
    // A run whose steps wait for a free GPU worker (scheduled, not started) shows as queued.
    const pending = (await client.workflow.getHandle(row.id).describe()).raw.pendingActivities ?? [];
    if (pending.length > 0 && pending.every((p) => p.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED))
      row.phase = 'queued';
  }
  const list = [...rows.values()];
  if (options.json) {
    console.log(JSON.stringify(list, null, 2));
    return 0;
  }
  if (list.length === 0) {
    console.log('no CSR runs yet; start one with: npx csr run --config configs/toy.yaml');
    return 0;
  }
  const when = (iso?: string) => (iso ? iso.slice(0, 19).replace('T', ' ') : '');
  console.log(
    table([
      ['id', 'status', 'kind', 'phase', 'iteration', 'started (UTC)', 'closed (UTC)'],
      ...list.map((r) => [r.id, r.status.toLowerCase(), r.kind, r.phase ?? '', r.iteration ?? '', when(r.start), when(r.close)]),
    ]),
  );
  return 0;
}

export async function cancelCommand(id: string): Promise<number> {
  const client = await connectClient();
  await client.workflow.getHandle(id).cancel();
  console.log(`cancellation requested for ${id}: running steps are stopped and their processes killed`);
  return 0;
}

export async function signalCommand(id: string, signal: 'pause' | 'resume'): Promise<number> {
  const client = await connectClient();
  const handle = client.workflow.getHandle(id);
  await handle.signal(signal);
  const status = await quickQuery<RunStatus>(client, id, 'runStatus');
  if (status?.currentChildId) await client.workflow.getHandle(status.currentChildId).signal(signal);
  console.log(signal === 'pause' ? `${id} pauses after the step in flight` : `${id} goes on`);
  return 0;
}
