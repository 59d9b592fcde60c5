/** Printing for people: aligned tables, durations, and the UI links. */
import { csrEnv } from '../../src/env';
import { MlflowClient } from '../../src/mlflow/client';

export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

export function seconds(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '-';
  if (value < 90) return `${Math.round(value)}s`;
  if (value < 5400) return `${Math.round(value / 60)}m`;
  return `${(value / 3600).toFixed(1)}h`;
}

/** `45s`, `2m05s`, `1h02m`; `-` when unknown. */
export function clock(secondsTotal: number | undefined): string {
  if (secondsTotal === undefined || !Number.isFinite(secondsTotal)) return '-';
  const s = Math.round(secondsTotal);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function metric(value: number | undefined): string {
  if (value === undefined) return '-';
  return Math.abs(value) >= 100 ? value.toFixed(1) : value.toFixed(3);
}

/**
 * MLflow 3's UI opens in its GenAI mode unless told otherwise; this query parameter (in the hash
 * route) opens it in its model-training mode, where runs, metrics and charts are.
 */
export const MLFLOW_ML_MODE = 'workflowType=machine_learning';

/** An MLflow UI page: `#/experiments/1/runs/abc?workflowType=machine_learning`. */
export function mlflowPage(mlflowUri: string, experimentId?: string, runId?: string): string {
  const route = experimentId ? `/experiments/${experimentId}${runId ? `/runs/${runId}` : ''}` : '/experiments';
  return `${mlflowUri.replace(/\/+$/, '')}/#${route}?${MLFLOW_ML_MODE}`;
}

/** Links to the run in the Temporal and MLflow UIs (the MLflow run's page when `mlflowRun` is known). */
export function uiLinks(workflowId?: string, mlflowRun?: { experimentId?: string; runId?: string }): string[] {
  const env = csrEnv();
  const temporal = workflowId
    ? `${env.temporalUiUrl}/namespaces/${env.namespace}/workflows/${encodeURIComponent(workflowId)}`
    : env.temporalUiUrl;
  return [`Temporal UI: ${temporal}`, `MLflow UI:   ${mlflowPage(env.mlflowUri, mlflowRun?.experimentId, mlflowRun?.runId)}`];
}

/** The experiment id of a run's MLflow refs, or undefined when MLflow does not answer within 3 s. */
export async function mlflowRunRefs(refs?: { experimentName: string; runId?: string }): Promise<{ experimentId?: string; runId?: string } | undefined> {
  if (!refs) return undefined;
  try {
    const client = new MlflowClient({ trackingUri: csrEnv().mlflowUri, timeoutMs: 3000, retry: { attempts: 1 } });
    const experiment = await client.getExperimentByName(refs.experimentName);
    return experiment ? { experimentId: experiment.experimentId, runId: refs.runId } : undefined;
  } catch {
    return undefined;
  }
}

/** Start and duration of a run across its continue-as-new segments, e.g. `started 2026-11-30 19:04:35 UTC, ran 12m30s`. */
export function startLine(view: { startTime?: string; closeTime?: string; status: string }, now = new Date()): string | undefined {
  if (!view.startTime) return undefined;
  const start = new Date(view.startTime);
  const end = view.closeTime && view.status !== 'RUNNING' ? new Date(view.closeTime) : now;
  const verb = view.status === 'RUNNING' ? 'running for' : 'ran';
  return `started ${view.startTime.slice(0, 19).replace('T', ' ')} UTC, ${verb} ${clock((end.getTime() - start.getTime()) / 1000)}`;
}
