/**
 * Following a run on the terminal: a live bar per running step and shard (from heartbeats), then a
 * summary table (iteration x metric) and the UI links. Without a TTY (CI, logs) it prints a line per
 * change instead of redrawing.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { Client } from '@temporalio/client';
import { connectClient } from '../client/temporal';
import { viewRun, type ActivityProgress, type RunView } from '../client/progress';
import type { IterationSummary } from '../shared/run-types';
import { metric, seconds, table, uiLinks } from './output';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function barName(activity: ActivityProgress, view: RunView): string {
  const iteration = view.run?.currentIteration;
  return `${iteration === undefined ? '' : `iter ${iteration} `}${activity.step}${activity.label ? ` ${activity.label}` : ''}`;
}

function progressLine(activity: ActivityProgress, view: RunView): string {
  const rate = activity.rate ? `${activity.rate.toFixed(2)} ${activity.unit ?? 'items'}/s` : '';
  const eta = activity.etaS !== undefined ? `ETA ${seconds(activity.etaS)}` : '';
  const retry = activity.attempt > 1 ? `attempt ${activity.attempt}` : '';
  const reused = activity.reused ? `${activity.reused} reused` : '';
  return [barName(activity, view), `${activity.done ?? 0}/${activity.total ?? '?'}`, rate, eta, reused, retry]
    .filter(Boolean)
    .join('  ');
}

/** Poll until the run closes; returns the CLI exit code (0 = completed). */
export async function followRun(workflowId: string, client?: Client): Promise<number> {
  client ??= await connectClient();
  const tty = Boolean(process.stdout.isTTY);
  const multibar = tty
    ? new MultiBar(
        { format: ' {name} |{bar}| {value}/{total} {unit} {rate} {eta_text}', hideCursor: true, clearOnComplete: false },
        Presets.shades_classic,
      )
    : undefined;
  const bars = new Map<string, SingleBar>();
  const printed = new Map<string, string>();
  let lastStep = '';
  let view: RunView;
  for (;;) {
    view = await viewRun(client, workflowId);
    const step = `${view.run?.currentIteration ?? '-'}:${view.iteration?.currentStep ?? view.run?.phase ?? view.status}`;
    if (step !== lastStep) {
      const text = view.iteration?.currentStep
        ? `iteration ${view.run?.currentIteration}: ${view.iteration.currentStep}`
        : `${view.run?.phase ?? view.status.toLowerCase()}`;
      if (multibar) multibar.log(`${text}\n`);
      else console.log(`[${new Date().toISOString().slice(11, 19)}] ${text}`);
      lastStep = step;
    }
    for (const activity of view.activities) {
      if (activity.total == null) continue; // no progress line from the step yet (loading)
      const key = `${view.run?.currentIteration}:${activity.activityId}:${activity.step}:${activity.label}`;
      if (multibar) {
        const payload = {
          name: barName(activity, view).padEnd(28),
          unit: activity.unit ?? '',
          rate: activity.rate ? `${activity.rate.toFixed(2)}/s` : '',
          eta_text: activity.etaS !== undefined ? `ETA ${seconds(activity.etaS)}` : '',
        };
        const bar = bars.get(key) ?? multibar.create(activity.total, 0, payload);
        bars.set(key, bar);
        bar.setTotal(activity.total);
        bar.update(activity.done ?? 0, payload);
      } else {
        const line = progressLine(activity, view);
        if (printed.get(key) !== `${activity.done}`) {
          console.log(`  ${line}`);
          printed.set(key, `${activity.done}`);
        }
      }
    }
    if (view.status !== 'RUNNING' && view.status !== 'CONTINUED_AS_NEW') break;
    await sleep(tty ? 1000 : 3000);
  }
  multibar?.stop();
  const final = await viewRun(client, workflowId);
  console.log('');
  console.log(`run ${workflowId}: ${final.status.toLowerCase()}`);
  if (final.failure) console.log(`failure: ${final.failure}`);
  if (final.run?.history.length) console.log(summaryTable(final.run.history));
  for (const line of uiLinks(workflowId)) console.log(line);
  return final.status === 'COMPLETED' ? 0 : 1;
}

/** Counts and per-split breakdowns stay in `status --json` and MLflow; the table shows the headline figures. */
const HEADLINE = /(^|\/)(CHAIR_S|CHAIR_I|recall|mean\/accuracy|mean\/f1|adversarial\/accuracy|accuracy|img_accuracy|image_accuracy|circular_accuracy|perception|cognition|total|relative_score)$/;
const BREAKDOWN = /\/(random|popular|adversarial)\/(?!accuracy$)|\/(category|l2_category|dimension|capability|answer_type)\//;

/** Iteration x headline metric, plus the preference-pair quality when the toy world's judge measured it. */
export function summaryTable(history: IterationSummary[]): string {
  const metricNames = [...new Set(history.flatMap((h) => Object.keys(h.metrics)))]
    .filter((name) => HEADLINE.test(name) && !BREAKDOWN.test(name) && !/\/(random|popular)\//.test(name))
    .sort();
  const statNames = ['curate/pairs', 'curate/gt_better', 'curate/gt_equal', 'curate/gt_worse'].filter((name) =>
    history.some((h) => h.stats[name] !== undefined),
  );
  const header = ['iteration', ...metricNames, ...statNames];
  const rows = history.map((h) => [
    String(h.iteration),
    ...metricNames.map((m) => metric(h.metrics[m])),
    ...statNames.map((s) => metric(h.stats[s])),
  ]);
  if (history.length > 1) rows.push(['change %', ...metricNames.map((m) => changeVsStart(history, m)), ...statNames.map(() => '')]);
  return table([header, ...rows]);
}

/** The last iteration against iteration 0, in percent of iteration 0 (the result a person looks for). */
export function changeVsStart(history: IterationSummary[], name: string): string {
  const start = history[0]?.metrics[name];
  const end = history[history.length - 1]?.metrics[name];
  if (typeof start !== 'number' || typeof end !== 'number' || start === 0) return '-';
  const change = ((end - start) / Math.abs(start)) * 100;
  return `${change > 0 ? '+' : ''}${change.toFixed(1)}`;
}
