/**
 * Following a run on the terminal (`csr run --wait`, `csr start`, `csr follow ID`). On a terminal: one
 * live bar per running step, replaced by one line when it ends. Otherwise (CI, logs): one line when a
 * step starts, a progress line at most once a minute while it runs, and one line when it ends, with
 * its items total / reused / computed. Then the summary table and the UI links. Ctrl-C detaches: the
 * run goes on.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { Client } from '@temporalio/client';
import { connectClient } from '../../src/client/temporal';
import { viewRun, type ActivityProgress, type RunView } from '../../src/client/progress';
import type { StepSummary } from '../../src/shared/run-types';
import { clock, summaryTable } from './summary-table';
import { mlflowRunRefs, startLine, uiLinks } from './output';

export { changeVsStart, summaryTable } from './summary-table';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `generate shard-0`, `dpo train`, `merge` (a label that repeats the step name is not printed twice). */
export function stepName(step: string, label?: string): string {
  return label && label !== step ? `${step} ${label}` : step;
}

/** `12/256 items  3.20 items/s  ETA 1m10s`: only the parts that are known (never `ETA -`). */
export function progressText(activity: ActivityProgress): string {
  const known = (v: number | undefined | null): v is number => typeof v === 'number' && Number.isFinite(v);
  const unit = activity.unit ?? 'items';
  const rate = known(activity.rate) && activity.rate > 0 ? `${activity.rate.toFixed(2)} ${unit}/s` : '';
  const eta = known(activity.etaS) && activity.etaS > 0 ? `ETA ${clock(activity.etaS)}` : '';
  const retry = activity.attempt > 1 ? `attempt ${activity.attempt}` : '';
  const reused = activity.reused ? `${activity.reused} reused` : '';
  return [`${activity.done ?? 0}/${activity.total ?? '?'} ${unit}`, rate, eta, reused, retry].filter(Boolean).join('  ');
}

/** The line printed when a step ends: every step, a skipped one as reused, never below its total. */
export function endLine(iteration: number, s: StepSummary): string {
  const name = `iter ${iteration} ${stepName(s.step, s.label)}`;
  const counts =
    s.itemsTotal === undefined
      ? ''
      : `${s.itemsTotal}/${s.itemsTotal} items (${s.itemsReused ?? 0} reused, ${s.itemsComputed ?? 0} computed)`;
  const verb = s.state === 'skipped' ? 'reused' : s.state;
  return [name, verb, counts, s.state === 'skipped' ? '' : clock(s.wallSeconds)].filter(Boolean).join('  ');
}

/** The steps of every iteration this view knows, finished ones from the history and the current one's. */
function knownSteps(view: RunView): { iteration: number; step: StepSummary }[] {
  const all = (view.run?.history ?? []).flatMap((h) => h.steps.map((step) => ({ iteration: h.iteration, step })));
  if (view.iteration) all.push(...view.iteration.steps.map((step) => ({ iteration: view.iteration!.iteration, step })));
  return all;
}

/** What `followRun` prints with, so tests can capture it. */
export interface FollowOptions {
  client?: Client;
  /** Every headline metric and the pair statistics in the summary. @default false */
  wide?: boolean;
  /** Live bars (a terminal) or lines. @default process.stdout.isTTY */
  tty?: boolean;
  /** Poll interval. @default 1000 on a terminal, 3000 otherwise */
  pollMs?: number;
  /** Seconds between two progress lines of one running step without a terminal. @default 60 */
  progressEveryS?: number;
  /** Where lines go. @default console.log */
  log?: (line: string) => void;
}

/** Poll until the run closes; returns the CLI exit code (0 = completed, 130 = detached with Ctrl-C). */
export async function followRun(workflowId: string, clientOrOptions?: Client | FollowOptions): Promise<number> {
  const options: FollowOptions =
    clientOrOptions && 'workflow' in clientOrOptions ? { client: clientOrOptions } : ((clientOrOptions as FollowOptions | undefined) ?? {});
  const client = options.client ?? (await connectClient());
  const tty = options.tty ?? Boolean(process.stdout.isTTY);
  const log = options.log ?? ((line: string) => console.log(line));
  const progressEveryMs = (options.progressEveryS ?? 60) * 1000;
  const multibar = tty
    ? new MultiBar({ format: ' {name} |{bar}| {progress}', hideCursor: true, clearOnComplete: false }, Presets.shades_classic)
    : undefined;
  const bars = new Map<string, SingleBar>();
  // Above live bars a line goes through the bars (which redraw under it); with none drawn, straight out.
  const say = (line: string) =>
    multibar && bars.size > 0 ? multibar.log(`${line}\n`) : log(multibar ? line : `[${new Date().toISOString().slice(11, 19)}] ${line}`);
  const started = new Set<string>();
  const ended = new Set<string>();
  const lastProgress = new Map<string, number>();
  let lastPhase = '';
  let detached = false;
  const onSigint = () => {
    detached = true;
  };
  process.once('SIGINT', onSigint);
  try {
    for (;;) {
      const view = await viewRun(client, workflowId);
      const phase = view.run?.phase ?? view.status.toLowerCase();
      // 'done' is said by the final status line below.
      if (phase !== lastPhase && phase !== 'running' && phase !== 'done') say(`run ${workflowId}: ${phase}`);
      lastPhase = phase;
      for (const { iteration, step } of knownSteps(view)) {
        const key = `${iteration}:${step.step}:${step.label ?? ''}`;
        if (step.state === 'running' && !started.has(key)) {
          started.add(key);
          if (!multibar) say(`iter ${iteration} ${stepName(step.step, step.label)}  started`);
        }
        if ((step.state === 'done' || step.state === 'skipped' || step.state === 'failed') && !ended.has(key)) {
          ended.add(key);
          started.add(key);
          const bar = bars.get(key);
          if (bar) {
            multibar?.remove(bar);
            bars.delete(key);
          }
          say(endLine(iteration, step));
        }
      }
      const iteration = view.iteration?.iteration ?? view.run?.currentIteration;
      for (const activity of view.activities) {
        if (activity.total == null) continue; // no progress line from the step yet (loading)
        const key = `${iteration}:${activity.step}:${activity.label ?? ''}`;
        if (ended.has(key)) continue;
        const name = `iter ${iteration ?? '-'} ${stepName(activity.step, activity.label)}`;
        if (multibar) {
          const payload = { name: name.padEnd(26), progress: progressText(activity) };
          let bar = bars.get(key);
          if (!bar) bars.set(key, (bar = multibar.create(activity.total, 0, payload)));
          bar.setTotal(activity.total);
          bar.update(activity.done ?? 0, payload);
        } else if (Date.now() - (lastProgress.get(key) ?? Date.now()) >= progressEveryMs) {
          say(`${name}  ${progressText(activity)}`);
          lastProgress.set(key, Date.now());
        } else if (!lastProgress.has(key)) {
          lastProgress.set(key, Date.now());
        }
      }
      if (view.status !== 'RUNNING' && view.status !== 'CONTINUED_AS_NEW') break;
      for (let waited = 0; waited < (options.pollMs ?? (tty ? 1000 : 3000)) && !detached; waited += 200) await sleep(200);
      if (detached) break;
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    multibar?.stop();
  }
  if (detached) {
    log('');
    log(`detached from ${workflowId}; the run goes on. Re-attach: npx csr follow ${workflowId}  stop it: npx csr cancel ${workflowId}`);
    return 130;
  }
  const final = await viewRun(client, workflowId, { chain: true });
  log('');
  log(`run ${workflowId}: ${final.status.toLowerCase()}${final.startTime ? ` (${startLine(final)})` : ''}`);
  if (final.failure) log(`failure: ${final.failure}`);
  if (final.run?.history.length) {
    log(summaryTable(final.run.history, { objective: final.run.objective, direction: final.run.objectiveDirection, wide: options.wide }));
  }
  for (const line of uiLinks(workflowId, await mlflowRunRefs(final.run?.mlflow))) log(line);
  return final.status === 'COMPLETED' ? 0 : 1;
}

/** `csr follow ID`: re-attach to a run, or to a sweep (its runs' state changes, then its table). */
export async function followCommand(id: string, options: { wide?: boolean } = {}): Promise<number> {
  const client = await connectClient();
  if ((await client.workflow.getHandle(id).describe()).type === 'csrSweep') {
    // Loaded here: the sweep command imports the run command, which imports this file.
    const { waitForSweep } = require('./sweep/command') as typeof import('./sweep/command');
    return waitForSweep(client, id, { wait: true });
  }
  return followRun(id, { client, wide: options.wide });
}
