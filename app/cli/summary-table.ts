/**
 * The table printed when a run ends (and by `csr status`): one row per iteration, the objective first
 * with its direction, the best iteration marked, the headline metrics that fit in 100 columns, the
 * pair count and the iteration's wall time, and a last row with the change against iteration 0.
 * `--wide` shows every headline metric and the pair-quality statistics; `status --json` has everything.
 */
import { isHeadlineMetric, METRIC_PRIORITY as PRIORITY } from '../../src/shared/headline-metrics';
import type { IterationSummary } from '../../src/shared/run-types';
import { clock, metric, table } from './output';

export { clock } from './output';

/** How the summary is laid out. */
export interface SummaryOptions {
  /** `<benchmark>/<metric>` the run optimises (the config's `evaluate.objective`); none = no best row. */
  objective?: string;
  /** Which way the objective is better. @default 'minimize' */
  direction?: 'minimize' | 'maximize';
  /** Every headline metric and the preference-pair statistics, however wide. @default false */
  wide?: boolean;
  /** Widest line of the default table. @default 99 */
  maxWidth?: number;
}

/** The pair statistics of `--wide` and what their short names mean. */
const PAIR_STATS: [string, string, string][] = [
  ['curate/gt_better', 'gt_better', 'share of pairs whose chosen response the ground truth also prefers'],
  ['curate/gt_equal', 'gt_equal', 'share the ground truth cannot tell apart'],
  ['curate/gt_worse', 'gt_worse', 'share where it prefers the rejected one'],
];

const split = (name: string): [string, string] => {
  const slash = name.indexOf('/');
  return slash < 0 ? ['', name] : [name.slice(0, slash), name.slice(slash + 1)];
};

/** A column's values as people read them: a column of counts as integers, any other with 3 decimals. */
export function columnCells(values: (number | undefined)[]): string[] {
  const counts = values.every((v) => v === undefined || Number.isInteger(v));
  return values.map((v) => (v === undefined ? '-' : counts ? String(v) : metric(v)));
}

/** Wall time of an iteration: first step start to last step end, e.g. `2m05s`. */
export function iterationWallTime(h: IterationSummary): string {
  const starts = h.steps.map((s) => Date.parse(s.startedAt ?? '')).filter(Number.isFinite);
  const ends = h.steps.map((s) => Date.parse(s.endedAt ?? '')).filter(Number.isFinite);
  if (h.steps.length > 0 && h.steps.every((s) => s.state === 'skipped')) return 'reused';
  let total = starts.length && ends.length ? (Math.max(...ends) - Math.min(...starts)) / 1000 : NaN;
  if (!Number.isFinite(total)) total = h.steps.reduce((sum, s) => sum + (s.wallSeconds ?? 0), 0) || NaN;
  return clock(total);
}

/** The iteration whose objective is best (undefined without an objective value). */
export function bestIteration(history: IterationSummary[], objective?: string, direction: SummaryOptions['direction'] = 'minimize') {
  let best: IterationSummary | undefined;
  for (const h of history) {
    const value = objective ? h.metrics[objective] : undefined;
    if (typeof value !== 'number') continue;
    const bestValue = best?.metrics[objective!];
    if (bestValue === undefined || (direction === 'minimize' ? value < bestValue : value > bestValue)) best = h;
  }
  return best?.iteration;
}

/** The last iteration against iteration 0, in percent of iteration 0 (the result a person looks for). */
export function changeVsStart(history: IterationSummary[], name: string): string {
  const start = history[0]?.metrics[name];
  const end = history[history.length - 1]?.metrics[name];
  if (typeof start !== 'number' || typeof end !== 'number' || start === 0) return '-';
  const change = ((end - start) / Math.abs(start)) * 100;
  return `${change > 0 ? '+' : ''}${change.toFixed(1)}`;
}

function rank(name: string, objective?: string): number[] {
  const [bench, metricName] = split(name);
  const objectiveMetric = objective ? split(objective)[1] : undefined;
  const p = PRIORITY.indexOf(metricName);
  return [name === objective ? 0 : 1, metricName === objectiveMetric ? 0 : 1, p < 0 ? PRIORITY.length : p, bench.includes('test') ? 0 : 1];
}

const byRank = (objective?: string) => (a: string, b: string) => {
  const ra = rank(a, objective);
  const rb = rank(b, objective);
  for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i]! - rb[i]!;
  return a.localeCompare(b);
};

/** Columns in reading order: the objective, then grouped by benchmark (the objective's benchmark first). */
function ordered(columns: string[], objective?: string): string[] {
  const benches = [...new Set(columns.map((c) => split(c)[0]))].sort((a, b) =>
    objective && a === split(objective)[0] ? -1 : objective && b === split(objective)[0] ? 1 : a.localeCompare(b),
  );
  return benches.flatMap((bench) => columns.filter((c) => split(c)[0] === bench).sort(byRank(objective)));
}

function render(history: IterationSummary[], metrics: string[], stats: [string, string][], options: SummaryOptions): string[] {
  const { objective, direction = 'minimize' } = options;
  const best = bestIteration(history, objective, direction);
  const start = objective ? history[0]?.metrics[objective] : undefined;
  const arrow = direction === 'minimize' ? ' ↓' : ' ↑';
  let lastBench: string | undefined;
  const benchRow = ['', ...metrics.map((m) => (split(m)[0] === lastBench ? '' : (lastBench = split(m)[0]))), ...stats.map(() => ''), ''];
  const nameRow = ['iteration', ...metrics.map((m) => split(m)[1] + (m === objective ? arrow : '')), ...stats.map(([, short]) => short), 'time'];
  const columns = [
    ...metrics.map((m) => columnCells(history.map((h) => h.metrics[m]))),
    ...stats.map(([name]) => columnCells(history.map((h) => h.stats[name]))),
  ];
  const rows = history.map((h, i) => {
    const value = objective ? h.metrics[objective] : undefined;
    const worse = h.iteration > 0 && value !== undefined && start !== undefined && (direction === 'minimize' ? value > start : value < start);
    const mark = h.iteration === best && history.length > 1 ? ' best' : worse ? ' worse' : '';
    return [`${h.iteration}${mark}`, ...columns.map((column) => column[i]!), iterationWallTime(h)];
  });
  if (history.length > 1) rows.push(['change %', ...metrics.map((m) => changeVsStart(history, m)), ...stats.map(() => ''), '']);
  return table([benchRow, nameRow, ...rows]).split('\n');
}

/**
 * Iteration x metric. The default table stays under `maxWidth` columns (headline metrics are added in
 * order of importance while they fit); `wide` shows every headline metric and the pair statistics.
 */
export function summaryTable(history: IterationSummary[], options: SummaryOptions = {}): string {
  const { objective, direction = 'minimize', wide = false, maxWidth = 99 } = options;
  const candidates = [...new Set(history.flatMap((h) => Object.keys(h.metrics)))]
    .filter((name) => name === objective || isHeadlineMetric(name))
    .sort(byRank(objective));
  const has = (name: string) => history.some((h) => h.stats[name] !== undefined);
  const stats: [string, string][] = has('curate/pairs') ? [['curate/pairs', 'pairs']] : [];
  let metrics: string[];
  if (wide) {
    stats.push(...PAIR_STATS.filter(([name]) => has(name)).map(([name, short]): [string, string] => [name, short]));
    metrics = ordered(candidates, objective);
  } else {
    metrics = [];
    for (const name of candidates) {
      const trial = ordered([...metrics, name], objective);
      if (metrics.length === 0 || Math.max(...render(history, trial, stats, options).map((l) => l.length)) <= maxWidth) metrics = trial;
    }
  }
  const notes: string[] = [];
  if (objective) {
    const bestAt = bestIteration(history, objective, direction);
    notes.push(
      `objective ${objective} (${direction === 'minimize' ? 'lower' : 'higher'} is better)` +
        (bestAt !== undefined && history.length > 1 ? `, best at iteration ${bestAt}` : ''),
    );
  }
  const hidden = candidates.length - metrics.length;
  if (!wide && hidden > 0) notes.push(`${hidden} more with --wide`);
  const lines = render(history, metrics, stats, options);
  if (wide) {
    const legend = PAIR_STATS.filter(([name]) => has(name)).map(([, short, meaning]) => `  ${short}: ${meaning}`);
    if (legend.length) lines.unshift('pairs: preference pairs curated; of those the toy world judged:', ...legend);
  }
  return [...(notes.length ? [notes.join('; ')] : []), ...lines].join('\n');
}
