/**
 * The sweep's table for people: one row per cell, its grid values, its seeds, and `mean ± sd` of the
 * chosen metrics; the best cell by the objective marked with `*`, and the objective's per-iteration
 * means beside it. Every metric is in the CSV and JSON; the terminal shows the headline ones.
 */
import type { SweepResult, SweepTable } from '../../../src/shared/sweep-types';
import { metric, table } from '../output';

/** Top-level figures of the benchmarks (per-split and per-category breakdowns stay in the CSV). */
const HEADLINE = /^[^/]+\/(CHAIR_I|CHAIR_I_distinct|CHAIR_S|recall|accuracy|f1|total|relative_score|perception|cognition)$/;

/** Columns of the printed table: `wanted` when given, else the objective and the headline metrics. */
export function printedMetrics(table: SweepTable, objective?: string, wanted?: string[]): string[] {
  const names = [...new Set(table.cells.flatMap((cell) => Object.keys(cell.metrics)))].sort();
  if (wanted?.length) return wanted;
  return [...(objective && names.includes(objective) ? [objective] : []), ...names.filter((name) => name !== objective && HEADLINE.test(name))];
}

/** The printed table. */
export function sweepTableText(result: Pick<SweepResult, 'table' | 'best' | 'objective' | 'direction'>, wanted?: string[]): string {
  const { table: sweep, best, objective } = result;
  const keys = [...new Set(sweep.cells.flatMap((cell) => Object.keys(cell.params)))];
  const metrics = printedMetrics(sweep, objective, wanted);
  const trend = objective && sweep.cells.some((cell) => cell.metrics[objective]) ? objective : undefined;
  const header = ['', ...keys, 'seeds', ...metrics, ...(trend ? [`${trend} by iteration`] : [])];
  const rows = sweep.cells.map((cell, index) => [
    index === best ? '*' : '',
    ...keys.map((key) => JSON.stringify(cell.params[key])),
    cell.seeds.length ? cell.seeds.join(' ') : 'none finished',
    ...metrics.map((name) => {
      const summary = cell.metrics[name];
      return summary ? `${metric(summary.mean)} ± ${metric(summary.sd)}` : '-';
    }),
    ...(trend ? [(cell.metrics[trend]?.by_iteration ?? []).map((value) => metric(value)).join(' -> ')] : []),
  ]);
  const note =
    best !== undefined && objective ? `\n* best cell by ${objective} (${result.direction === 'minimize' ? 'lowest' : 'highest'} mean)` : '';
  return `${table([header, ...rows])}\nmean ± sd over seeds at the last iteration (sample sd; 0 with one seed)${note}`;
}
