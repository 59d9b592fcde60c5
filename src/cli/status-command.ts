/** `csr status ID` and `csr list`: where runs stand. */
import { temporal } from '@temporalio/proto';
import { connectClient } from '../client/temporal';
import { quickQuery, viewRun, type RunView } from '../client/progress';
import type { RunStatus, StepSummary } from '../shared/run-types';
import { summaryTable } from './follow';
import { metric, seconds, table, uiLinks } from './output';

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
    history: history.map((h) => ({
      iteration: h.iteration,
      model: h.model,
      improved: h.improved,
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

export async function statusCommand(id: string, options: { json?: boolean }): Promise<number> {
  const client = await connectClient();
  const view = await viewRun(client, id);
  if (options.json) {
    console.log(JSON.stringify(statusJson(view), null, 2));
    return 0;
  }
  const run = view.run;
  console.log(`run ${id}: ${run?.phase ?? view.status.toLowerCase()}${run?.paused ? ' (paused)' : ''}`);
  if (run?.resumedFrom) console.log(`resumed from ${run.resumedFrom}`);
  if (view.failure) console.log(`failure: ${view.failure}`);
  if (run) console.log(`iteration ${run.currentIteration ?? '-'} of ${run.iterations}${view.iteration?.currentStep ? `, step: ${view.iteration.currentStep}` : ''}`);
  if (view.iteration?.steps.length) {
    console.log(
      table([
        ['step', 'shard', 'state', 'total', 'reused', 'computed', 'time'],
        ...view.iteration.steps.map((s) => [
          s.step,
          s.label ?? '',
          s.state,
          String(s.itemsTotal ?? '-'),
          String(s.itemsReused ?? '-'),
          String(s.itemsComputed ?? '-'),
          seconds(s.wallSeconds),
        ]),
      ]),
    );
  }
  for (const a of view.activities) {
    const eta = a.etaS !== undefined ? ` ETA ${seconds(a.etaS)}` : '';
    console.log(`  running: ${a.step} ${a.label ?? ''} ${a.done ?? 0}/${a.total ?? '?'}${a.rate ? ` at ${metric(a.rate)}/s` : ''}${eta}${a.attempt > 1 ? ` (attempt ${a.attempt})` : ''}`);
  }
  if (run?.history.length) console.log(summaryTable(run.history));
  for (const line of uiLinks(id)) console.log(line);
  return 0;
}

export async function listCommand(options: { json?: boolean; limit?: number }): Promise<number> {
  const client = await connectClient();
  const rows: { id: string; status: string; phase?: string; iteration?: string; start?: string; close?: string }[] = [];
  for await (const execution of client.workflow.list({ query: "WorkflowType = 'csrRun'" })) {
    if (rows.some((r) => r.id === execution.workflowId)) continue; // continue-as-new chains list once
    const row: (typeof rows)[number] = {
      id: execution.workflowId,
      status: execution.status.name,
      start: execution.startTime.toISOString(),
      close: execution.closeTime?.toISOString(),
    };
    if (execution.status.name === 'RUNNING') {
      const status = await quickQuery<RunStatus>(client, execution.workflowId, 'runStatus');
      if (!status) {
        row.phase = 'no worker answers';
      } else {
        row.phase = status.phase;
        row.iteration = `${status.currentIteration ?? '-'}/${status.iterations}`;
        // A run whose steps wait for a free GPU worker (scheduled, not started) shows as queued.
        const pending = (await client.workflow.getHandle(execution.workflowId).describe()).raw.pendingActivities ?? [];
        if (pending.length > 0 && pending.every((p) => p.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED))
          row.phase = 'queued';
      }
    }
    rows.push(row);
    if (rows.length >= (options.limit ?? 50)) break;
  }
  if (options.json) {
    console.log(JSON.stringify(rows, null, 2));
    return 0;
  }
  if (rows.length === 0) {
    console.log('no CSR runs yet; start one with: npx csr run --config configs/toy.yaml');
    return 0;
  }
  console.log(
    table([
      ['run', 'status', 'phase', 'iteration', 'started', 'closed'],
      ...rows.map((r) => [r.id, r.status.toLowerCase(), r.phase ?? '', r.iteration ?? '', r.start ?? '', r.close ?? '']),
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
