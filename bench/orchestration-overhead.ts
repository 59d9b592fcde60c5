/**
 * Orchestration overhead of a finished CSR run, from its Temporal histories: for every compute step,
 * the time from the previous step's end to its start (queueing + workflow task + worker pickup), and
 * the share of the run's wall time during which no compute step ran. Each step's wall time is split
 * by its manifest's `timings` (written by the step process): process start + model load vs compute.
 *
 *   npx tsx bench/orchestration-overhead.ts <run workflow id> [--gaps]
 *
 * `--gaps` also lists every stretch of at least 20 ms in which no compute step ran, with the light activities
 * that ran in it and the rest (no activity at all), in run time order: where to look next.
 *
 * Compute time is the union of the compute-step activities' intervals (pickup to completion), not their
 * sum: steps that run side by side (shards, the benchmarks of an evaluation) would otherwise count twice
 * and could push the "non-compute" share below zero. What fills the time outside them (the light
 * activities: MLflow tracking, prompt sampling, ...) is listed by activity type; the time in which no activity
 * at all runs (workflow tasks, starting a child workflow, continue-as-new, task pickup) is the last part.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { temporal } from '@temporalio/proto';
import type { StepManifest, StepTimings } from '../activities/manifest';
import { connectClient } from '../src/client/temporal';

type Event = temporal.api.history.v1.IHistoryEvent;

/** The `timings` of a step's manifest; undefined when the step wrote none (older code, in-process run). */
function timingsOf(outDir: string | undefined): StepTimings | undefined {
  if (!outDir) return undefined;
  try {
    const manifest = JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')) as StepManifest;
    return manifest.timings;
  } catch {
    return undefined; // artifacts on another host, or removed since
  }
}

const seconds = (event: Event | undefined) =>
  event?.eventTime ? Number(event.eventTime.seconds ?? 0) + (event.eventTime.nanos ?? 0) / 1e9 : NaN;

async function main(): Promise<void> {
  const runId = process.argv[2];
  if (!runId) throw new Error('usage: npx tsx bench/orchestration-overhead.ts <run workflow id> [--gaps]');
  const listGaps = process.argv.includes('--gaps');
  const client = await connectClient();
  const converter = client.options.loadedDataConverter.payloadConverter;
  // Every execution: the run's continue-as-new chain (one workflow id, several run ids) and its children.
  const ids: { workflowId: string; runId: string }[] = [];
  for await (const execution of client.workflow.list({ query: `WorkflowId = '${runId}' OR RootWorkflowId = '${runId}'` })) {
    ids.push({ workflowId: execution.workflowId, runId: execution.runId });
  }
  const gaps: number[] = [];
  let computeSeconds = 0;
  const split = { startup_s: 0, load_s: 0, compute_s: 0, steps: 0, without: 0 };
  let first = Infinity;
  let last = -Infinity;
  const rows: string[] = [];
  const computeSpans: [number, number][] = [];
  const lightSpans: { type: string; span: [number, number] }[] = [];
  const iterationStarts = new Map<number, number>();
  for (const { workflowId: id, runId: executionRunId } of ids) {
    const history = await client.workflow.getHandle(id, executionRunId).fetchHistory();
    const events = history.events ?? [];
    first = Math.min(first, seconds(events[0]));
    last = Math.max(last, seconds(events[events.length - 1]));
    const iteration = /\/iter-(\d+)$/.exec(id);
    if (iteration) iterationStarts.set(Number(iteration[1]), seconds(events[0]));
    const scheduled = new Map<string, Event>();
    const started = new Map<string, Event>();
    let previousEnd: number | undefined;
    for (const event of events) {
      const id64 = String(event.eventId);
      if (event.activityTaskScheduledEventAttributes) scheduled.set(id64, event);
      if (event.activityTaskStartedEventAttributes)
        started.set(String(event.activityTaskStartedEventAttributes.scheduledEventId), event);
      const done = event.activityTaskCompletedEventAttributes;
      if (!done) continue;
      const sched = scheduled.get(String(done.scheduledEventId));
      const type = sched?.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
      const payload = done.result?.payloads?.[0];
      const result = payload
        ? converter.fromPayload<{ wallSeconds?: number; step?: string; outDir?: string; skipped?: boolean }>(payload as never)
        : undefined;
      const start = seconds(started.get(String(done.scheduledEventId)));
      const end = seconds(event);
      if (type === 'runComputeStep') computeSpans.push([start, end]);
      else lightSpans.push({ type, span: [start, end] });
      if (type === 'runComputeStep' && result?.wallSeconds !== undefined) {
        computeSeconds += result.wallSeconds;
        if (previousEnd !== undefined && start > previousEnd) gaps.push(start - previousEnd);
        // A skipped step ran no process: its manifest's timings are the earlier run's.
        const timings = result.skipped ? undefined : timingsOf(result.outDir);
        let parts = result.skipped ? '\tskipped' : '\tno timings';
        if (timings) {
          split.startup_s += timings.startup_s;
          split.load_s += timings.load_s;
          split.compute_s += timings.compute_s;
          split.steps += 1;
          parts = `\tstart+load ${(timings.startup_s + timings.load_s).toFixed(1)}s\tcompute ${timings.compute_s.toFixed(1)}s`;
        } else if (!result.skipped) split.without += 1;
        rows.push(
          `${id.split('/').pop()}\t${result.step}\tpickup ${(start - seconds(sched)).toFixed(2)}s\t` +
            `step ${result.wallSeconds.toFixed(1)}s${parts}\tactivity ${(end - start).toFixed(1)}s`,
        );
      }
      previousEnd = Math.max(previousEnd ?? 0, end);
    }
  }
  const wall = last - first;
  const covered = union(computeSpans);
  const coveredSeconds = covered.reduce((sum, [a, b]) => sum + (b - a), 0);
  // Each light activity's time outside every compute step: what orchestration adds to the run's wall time.
  const outside = new Map<string, number>();
  for (const { type, span } of lightSpans) {
    const inside = covered.reduce((sum, [a, b]) => sum + Math.max(0, Math.min(b, span[1]) - Math.max(a, span[0])), 0);
    outside.set(type, (outside.get(type) ?? 0) + (span[1] - span[0] - inside));
  }
  gaps.sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)] ?? NaN;
  console.log(rows.join('\n'));
  if (listGaps) console.log(`\n${gapLines(first, last, covered, lightSpans).join('\n')}`);
  console.log(`\nworkflows: ${ids.length}, compute steps: ${rows.length}`);
  console.log(`step end -> next step start: median ${median.toFixed(2)}s, max ${(gaps.at(-1) ?? NaN).toFixed(2)}s over ${gaps.length} transitions`);
  console.log(
    `run wall time ${wall.toFixed(1)}s, compute (union of compute-step activities) ${coveredSeconds.toFixed(1)}s, ` +
      `sum of step wall times ${computeSeconds.toFixed(1)}s`,
  );
  const light = [...outside.entries()].sort((a, b) => b[1] - a[1]).filter(([, v]) => v >= 0.005);
  console.log(`outside compute: ${light.map(([type, v]) => `${type} ${v.toFixed(2)}s`).join(', ') || 'nothing'}`);
  const anyActivity = union([...computeSpans, ...lightSpans.map(({ span }) => span)]).reduce((sum, [a, b]) => sum + (b - a), 0);
  console.log(`no activity running: ${(wall - anyActivity).toFixed(2)}s (workflow tasks, child workflow starts, continue-as-new, pickups)`);
  console.log(
    `step time split: startup ${split.startup_s.toFixed(1)}s, load ${split.load_s.toFixed(1)}s, ` +
      `compute ${split.compute_s.toFixed(1)}s over ${split.steps} steps (${split.without} without timings)`,
  );
  console.log(`non-compute share: ${(((wall - coveredSeconds) / wall) * 100).toFixed(1)}% of the run's wall time`);
  const perIteration = iterationShares(iterationStarts, last, covered);
  if (perIteration.length) {
    console.log(
      `per iteration (its child workflow's start to the next one's, the last to the run's end): ` +
        perIteration.map(({ iteration, wall: w, share }) => `it${iteration} ${w.toFixed(1)}s ${(share * 100).toFixed(1)}%`).join(', '),
    );
  }
}

/**
 * Each iteration's non-compute share. An iteration's window runs from its child workflow's first event to
 * the next iteration's (so the hand-over between them, continue-as-new and the child start, counts
 * against the iteration before), and the last one's to the run's end (its closing MLflow record).
 * Iteration 0 is the baseline evaluation, and its window also holds the run's preparation.
 */
function iterationShares(starts: Map<number, number>, runEnd: number, covered: [number, number][]) {
  const ordered = [...starts.entries()].sort((a, b) => a[0] - b[0]);
  return ordered.map(([iteration, start], index) => {
    const end = ordered[index + 1]?.[1] ?? runEnd;
    const inside = covered.reduce((sum, [a, b]) => sum + Math.max(0, Math.min(b, end) - Math.max(a, start)), 0);
    return { iteration, wall: end - start, share: (end - start - inside) / (end - start) };
  });
}

/** Each stretch of >= 20 ms without a compute step: its start (run time), length, light activities in it and the rest. */
function gapLines(first: number, last: number, covered: [number, number][], light: { type: string; span: [number, number] }[]): string[] {
  const lines: string[] = [];
  let cursor = first;
  for (const [a, b] of [...covered, [last, last] as [number, number]]) {
    if (a - cursor >= 0.02) {
      const inGap = light
        .map(({ type, span }) => ({ type, s: Math.max(0, Math.min(a, span[1]) - Math.max(cursor, span[0])) }))
        .filter(({ s }) => s >= 0.005);
      const busy = union(inGap.length ? light.map(({ span }) => [Math.max(cursor, span[0]), Math.min(a, span[1])] as [number, number]).filter(([x, y]) => y > x) : []);
      const idle = a - cursor - busy.reduce((sum, [x, y]) => sum + (y - x), 0);
      const parts = [...inGap.map(({ type, s }) => `${type} ${s.toFixed(2)}s`), `no activity ${idle.toFixed(2)}s`];
      lines.push(`gap at ${(cursor - first).toFixed(1)}s: ${(a - cursor).toFixed(2)}s (${parts.join(', ')})`);
    }
    cursor = Math.max(cursor, b);
  }
  return lines;
}

/** The union of intervals, as sorted disjoint intervals. */
function union(spans: [number, number][]): [number, number][] {
  const merged: [number, number][] = [];
  for (const [a, b] of [...spans].sort((x, y) => x[0] - y[0])) {
    const lastSpan = merged.at(-1);
    if (lastSpan && a <= lastSpan[1]) lastSpan[1] = Math.max(lastSpan[1], b);
    else merged.push([a, b]);
  }
  return merged;
}

main().catch((error: unknown) => {
  console.error((error as Error).message);
  process.exitCode = 1;
});
