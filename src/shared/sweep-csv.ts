/**
 * The sweep's table as CSV (the MLflow artifact `sweep/table.csv`): long format, one row per cell and
 * metric, so that any metric can be filtered or pivoted in a spreadsheet or pandas without knowing
 * the grid in advance.
 */
import type { SweepTable } from './sweep-types';

/** A CSV field, quoted when it holds a comma, a quote or a line break. */
function field(value: unknown): string {
  const text = value === null ? 'null' : value === undefined ? '' : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * Columns: `cell`, each grid key, `seeds` (space-separated), `metric`, `mean`, `sd`, `n`,
 * `iter_0..iter_K` (per-iteration means), and `best` (1 on the objective's row of the best cell).
 */
export function sweepCsv(table: SweepTable, best?: number, objective?: string): string {
  const keys = [...new Set(table.cells.flatMap((cell) => Object.keys(cell.params)))];
  const iterations = Math.max(0, ...table.cells.flatMap((cell) => Object.values(cell.metrics).map((m) => m.by_iteration.length)));
  const header = ['cell', ...keys, 'seeds', 'metric', 'mean', 'sd', 'n', ...Array.from({ length: iterations }, (_, i) => `iter_${i}`), 'best'];
  const rows = [header.map(field).join(',')];
  table.cells.forEach((cell, index) => {
    for (const [name, summary] of Object.entries(cell.metrics)) {
      const byIteration = Array.from({ length: iterations }, (_, i) => summary.by_iteration[i]);
      const marked = index === best && name === objective ? 1 : 0;
      rows.push(
        [index, ...keys.map((key) => cell.params[key]), cell.seeds.join(' '), name, summary.mean, summary.sd, summary.n, ...byIteration, marked]
          .map(field)
          .join(','),
      );
    }
  });
  return `${rows.join('\n')}\n`;
}
