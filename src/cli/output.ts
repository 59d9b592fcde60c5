/** Printing for people: aligned tables, durations, and the UI links. */
import { csrEnv } from '../env';

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

export function metric(value: number | undefined): string {
  if (value === undefined) return '-';
  return Math.abs(value) >= 100 ? value.toFixed(1) : value.toFixed(3);
}

/** Links to the run in the Temporal and MLflow UIs. */
export function uiLinks(workflowId?: string): string[] {
  const env = csrEnv();
  const temporal = workflowId
    ? `${env.temporalUiUrl}/namespaces/${env.namespace}/workflows/${encodeURIComponent(workflowId)}`
    : env.temporalUiUrl;
  return [`Temporal UI: ${temporal}`, `MLflow UI:   ${env.mlflowUri}`];
}
