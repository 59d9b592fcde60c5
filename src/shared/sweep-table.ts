/**
 * The sweep's table: per cell and metric, the mean and sample sd over seeds at each run's last
 * iteration, and the per-iteration means. Pure: the sweep workflow computes it in its sandbox, and
 * tests check it on hand-computed numbers.
 */
import type { CellSummary, MetricSummary, SweepCell, SweepRunState, SweepTable } from './sweep-types';

/** Mean of a non-empty list. */
export function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Sample standard deviation (n - 1); 0 for a single value, since one seed says nothing about spread. */
export function sampleSd(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const m = mean(values);
  return Math.sqrt(values.reduce((sum, value) => sum + (value - m) ** 2, 0) / (values.length - 1));
}

/**
 * One row per cell, in grid order. A run counts toward its cell only when it finished; each run's
 * last recorded iteration is its result (a run stopped early by `stop_when_worse` counts with the
 * model it ended with).
 */
export function summarizeSweep(cells: readonly SweepCell[], runs: readonly SweepRunState[]): SweepTable {
  return {
    cells: cells.map((cell): CellSummary => {
      const finished = runs.filter((run) => run.cell === cell.index && run.state === 'done' && run.metricsByIteration?.length);
      const histories = finished.map((run) => run.metricsByIteration as Record<string, number>[]);
      const names = [...new Set(histories.flatMap((history) => history.flatMap((entry) => Object.keys(entry))))].sort();
      const metrics: Record<string, MetricSummary> = {};
      for (const name of names) {
        const last = histories.map((history) => history[history.length - 1]?.[name]).filter(isNumber);
        if (last.length === 0) continue;
        const iterations = Math.max(...histories.map((history) => history.length));
        const byIteration: number[] = [];
        for (let iteration = 0; iteration < iterations; iteration++) {
          const values = histories.map((history) => history[iteration]?.[name]).filter(isNumber);
          // A hole (no seed reached this iteration) would shift every later mean; stop the series there.
          if (values.length === 0) break;
          byIteration.push(mean(values));
        }
        metrics[name] = { mean: mean(last), sd: sampleSd(last), n: last.length, by_iteration: byIteration };
      }
      return { params: { ...cell.params }, seeds: finished.map((run) => run.seed).sort((a, b) => a - b), metrics };
    }),
  };
}

/** Index of the cell with the best mean objective, or undefined when no cell reports it. */
export function bestCell(table: SweepTable, objective: string | undefined, direction: 'minimize' | 'maximize'): number | undefined {
  if (!objective) return undefined;
  let best: number | undefined;
  table.cells.forEach((cell, index) => {
    const value = cell.metrics[objective]?.mean;
    if (value === undefined) return;
    const current = best === undefined ? undefined : table.cells[best]?.metrics[objective]?.mean;
    if (current === undefined || (direction === 'minimize' ? value < current : value > current)) best = index;
  });
  return best;
}

function isNumber(value: number | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
