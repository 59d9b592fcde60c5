/**
 * Where a run stands, read from Temporal: the run workflow's status query, the current iteration's
 * query, and the heartbeat details of its pending activities (done / total / rate / ETA per shard).
 */
import type { Client } from '@temporalio/client';
import type { IterationStatus, RunStatus } from '../shared/run-types';

/** Progress of one running activity, from its last heartbeat. */
export interface ActivityProgress {
  activityId: string;
  step: string;
  label?: string;
  attempt: number;
  done?: number;
  total?: number;
  reused?: number;
  rate?: number;
  etaS?: number;
  unit?: string;
  lastHeartbeat?: string;
  lastFailure?: string;
}

/** Everything `csr status` shows. */
export interface RunView {
  workflowId: string;
  status: string;
  startTime?: string;
  closeTime?: string;
  run?: RunStatus;
  iteration?: IterationStatus;
  activities: ActivityProgress[];
  failure?: string;
}

type Details = {
  step?: string;
  label?: string;
  done?: number;
  total?: number;
  reused?: number;
  rate?: number;
  eta_s?: number;
  unit?: string;
};

/**
 * A query answered by a worker, or undefined after `timeoutMs`: a run whose workers are down would
 * otherwise hold `csr status` until the server's own deadline.
 */
export async function quickQuery<T>(client: Client, workflowId: string, query: string, timeoutMs = 3000): Promise<T | undefined> {
  try {
    return await client.withDeadline(Date.now() + timeoutMs, () => client.workflow.getHandle(workflowId).query<T>(query));
  } catch {
    return undefined;
  }
}

/** Pending activities of a workflow with their decoded heartbeat details. */
export async function pendingActivities(client: Client, workflowId: string): Promise<ActivityProgress[]> {
  const description = await client.workflow.getHandle(workflowId).describe();
  const pending = description.raw.pendingActivities ?? [];
  const converter = client.options.loadedDataConverter.payloadConverter;
  return pending.map((activity) => {
    const payloads = activity.heartbeatDetails?.payloads ?? [];
    let details: Details = {};
    if (payloads.length > 0) {
      try {
        details = converter.fromPayload<Details>(payloads[0] as never) ?? {};
      } catch {
        details = {};
      }
    }
    const seconds = activity.lastHeartbeatTime?.seconds;
    return {
      activityId: activity.activityId ?? '?',
      step: details.step ?? activity.activityType?.name ?? '?',
      label: details.label,
      attempt: activity.attempt ?? 1,
      done: details.done,
      total: details.total,
      reused: details.reused,
      rate: details.rate,
      etaS: details.eta_s,
      unit: details.unit,
      lastHeartbeat: seconds ? new Date(Number(seconds) * 1000).toISOString() : undefined,
      lastFailure: activity.lastFailure?.message ?? undefined,
    };
  });
}

/**
 * Start of a workflow chain (its first continue-as-new segment) and, once it closed, its end: the
 * latest segment alone would show a long run as started at its last iteration.
 */
export async function chainTimes(client: Client, workflowId: string): Promise<{ start?: Date; close?: Date }> {
  let start: Date | undefined;
  let close: Date | undefined;
  let open = false;
  const query = `WorkflowId = '${workflowId.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  for await (const execution of client.workflow.list({ query })) {
    if (!start || execution.startTime < start) start = execution.startTime;
    if (!execution.closeTime) open = true;
    else if (!close || execution.closeTime > close) close = execution.closeTime;
  }
  return { start, close: open ? undefined : close };
}

/**
 * The whole picture of one run. `startTime` is the first continue-as-new segment's with `chain`
 * (a visibility query more; a poll loop does without it), else the latest segment's.
 */
export async function viewRun(client: Client, workflowId: string, options: { chain?: boolean } = {}): Promise<RunView> {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const view: RunView = {
    workflowId,
    status: description.status.name,
    startTime: description.startTime?.toISOString(),
    closeTime: description.closeTime?.toISOString(),
    activities: [],
  };
  try {
    const chain = options.chain ? await chainTimes(client, workflowId) : {};
    if (chain.start && chain.start < (description.startTime ?? chain.start)) view.startTime = chain.start.toISOString();
  } catch {
    // Visibility may lag or be unavailable: the latest segment's start is the best we have.
  }
  // A closed run is queryable only while a worker can replay it; the history summary is then missing.
  view.run = await quickQuery<RunStatus>(client, workflowId, 'runStatus');
  if (description.status.name === 'RUNNING') {
    view.activities = await pendingActivities(client, workflowId);
    const child = view.run?.currentChildId;
    if (child) {
      try {
        view.iteration = await quickQuery<IterationStatus>(client, child, 'iterationStatus');
        view.activities.push(...(await pendingActivities(client, child)));
      } catch {
        // The child may be starting or just finished; the next poll sees it.
      }
    }
  }
  if (description.status.name === 'FAILED' || description.status.name === 'TERMINATED') {
    try {
      await handle.result();
    } catch (error) {
      view.failure = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
    }
  }
  return view;
}
