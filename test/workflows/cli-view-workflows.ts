/**
 * Stand-ins for `csrRun` and `csrSweep` that answer the queries the CLI reads (`runStatus`,
 * `iterationStatus`, `sweepStatus`) from a state the test drives by signal: the CLI's views
 * (`list`, `status`, `follow`, `resume`) are tested on a real server without running compute.
 */
import { condition, continueAsNew, defineQuery, defineSignal, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type * as activities from './cli-view-activities';
import type { IterationStatus, IterationSummary, RunStatus } from '../../src/shared/run-types';
import type { SweepResult, SweepStatus } from '../../src/shared/sweep-types';

/** The stand-in run's input: its first segment continues as new after `firstSegmentMs`. */
export interface FakeRunInput {
  segment: number;
  firstSegmentMs: number;
  history: IterationSummary[];
  /** The second segment runs `generate shard-0` as an activity that heartbeats progress for this long (0 = none). */
  stepMs?: number;
}

const { fakeStep } = proxyActivities<typeof activities>({ startToCloseTimeout: '1m', heartbeatTimeout: '10s' });

const runStatusQuery = defineQuery<RunStatus>('runStatus');
const iterationStatusQuery = defineQuery<IterationStatus>('iterationStatus');
const sweepStatusQuery = defineQuery<SweepStatus>('sweepStatus');
/** Iteration 1's `generate shard-0` ends (it runs until then). */
export const stepDoneSignal = defineSignal('stepDone');
/** Iteration 1 ends and the run completes. */
export const finishSignal = defineSignal('finish');

export async function csrRun(input: FakeRunInput): Promise<IterationSummary[]> {
  const { workflowId } = workflowInfo();
  const steps: IterationStatus['steps'] = [
    { step: 'generate', label: 'shard-0', state: 'running', startedAt: '2026-01-01T00:00:00Z' },
    { step: 'merge', label: 'merge', state: 'pending' },
  ];
  let finished = false;
  const stepDone = () => {
    Object.assign(steps[0]!, { state: 'done', itemsTotal: 64, itemsReused: 0, itemsComputed: 64, wallSeconds: 75, endedAt: '2026-01-01T00:01:15Z' });
    Object.assign(steps[1]!, { state: 'skipped', itemsTotal: 1, itemsReused: 1, itemsComputed: 0, wallSeconds: 0 });
  };
  setHandler(stepDoneSignal, stepDone);
  setHandler(finishSignal, () => void (finished = true));
  const last = { iteration: 1, model: 'm1', metrics: { 'b/CHAIR_I': 20, 'b/recall': 80 }, stats: { 'curate/pairs': 57 }, steps };
  const history = () => (finished ? [...input.history, last] : input.history);
  setHandler(runStatusQuery, () => ({
    workflowId,
    runKey: workflowId,
    phase: finished ? 'done' : 'running',
    iterations: 1,
    currentIteration: 1,
    currentChildId: finished ? undefined : workflowId,
    paused: false,
    history: history(),
    objective: 'b/CHAIR_I',
    objectiveDirection: 'minimize',
  }));
  setHandler(iterationStatusQuery, () => ({ iteration: 1, currentStep: 'generate', paused: false, steps }));
  if (input.segment === 0) {
    await sleep(input.firstSegmentMs);
    await continueAsNew<typeof csrRun>({ ...input, segment: 1 });
  }
  if (input.stepMs) {
    await fakeStep(input.stepMs);
    stepDone();
  }
  await condition(() => finished);
  return history();
}

export async function csrSweep(): Promise<SweepResult> {
  let finished = false;
  const runs: SweepStatus['runs'] = [
    { cell: 0, seed: 0, runKey: 'k-c0-s0', workflowId: 'k-c0-s0', state: 'done', computedByIteration: [300, 512, 0] },
    { cell: 1, seed: 0, runKey: 'k-c1-s0', workflowId: 'k-c1-s0', state: 'running', computedByIteration: [0] },
  ];
  setHandler(finishSignal, () => void (finished = true));
  setHandler(sweepStatusQuery, () => ({ sweepKey: workflowInfo().workflowId, phase: 'running', runs }));
  await condition(() => finished);
  return { table: { cells: [] }, direction: 'minimize', runs };
}
