/**
 * One CSR iteration: the phases of `iterationPhases` (src/shared/plan.ts: generate, sharded over the GPU
 * workers -> reward, sharded -> curate -> DPO -> merge -> evaluate, one activity per benchmark), then the
 * gate (did the objective improve). Iteration 0 only evaluates the base model.
 *
 * Deterministic and reference-only: every step is an activity that receives a spec of paths and
 * returns a small manifest summary. The plan (the phases, their order, which spec each step gets and
 * where it runs) is pure functions of the config, so `csr resume --dry-run` lists the same steps.
 * MLflow tracking (trackIterationStart, trackIterationEnd) runs on a tracking lane (tracking-lane.ts): in
 * order, off the steps' path, drained before the iteration returns. When the run asks (patch 'tracking-carry'),
 * the iteration hands its trackIterationEnd back instead of waiting for it, and runs the previous iteration's
 * first on its own lane.
 */
import {
  type ActivityInterfaceFor,
  CancellationScope,
  condition,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { WorkflowActivities } from '../activities/light-activities';
import type {
  CsrIterationInput,
  IterationEndTracking,
  IterationResult,
  IterationStatus,
  IterationSummary,
  IterationTracking,
  StepSummary,
} from '../src/shared/run-types';
import { improvedObjective, iterationPhases, mergedModel, promptSampleInput, type PlannedStep } from '../src/shared/plan';
import { computeActivityOptions, lightActivityOptions, stepTimers } from './activity-options';
import { CPU_QUEUE, GPU_QUEUE } from '../src/shared/task-queues';
import { iterationStatusQuery, pauseSignal, resumeSignal } from './messages';
import {
  DPO_CURVES_LANE_PATCH,
  RUN_TRACKING_LANE_PATCH,
  TRACKING_CARRY_PATCH,
  TRACKING_LANE_PATCH,
  TrackingLane,
} from './tracking-lane';

type Activities = ActivityInterfaceFor<WorkflowActivities>;

/** What the Temporal UI shows for a compute step's activity: `iter 2 · generate · shard-0`. */
export function activitySummary(iteration: number, step: string, label?: string): string {
  return [`iter ${iteration}`, step, ...(label && label !== step ? [label] : [])].join(' · ');
}

/** Run one iteration; returns its summary for the run workflow's history (and, when asked, its MLflow logging still to do). */
export async function csrIteration(input: CsrIterationInput): Promise<IterationResult> {
  const { config, paths, iteration } = input;
  const gpu = proxyActivities<WorkflowActivities>(computeActivityOptions(config, GPU_QUEUE));
  const cpuCompute = proxyActivities<WorkflowActivities>(computeActivityOptions(config, CPU_QUEUE));
  const light = proxyActivities<WorkflowActivities>(lightActivityOptions);

  // New runs put MLflow tracking on a lane that compute steps do not wait for (see tracking-lane.ts);
  // iterations started before replay the branch that awaits each tracking call in place.
  const lane = patched(TRACKING_LANE_PATCH) ? new TrackingLane() : undefined;
  // Only a run that will carry the end on asks for it; iterations started before (no such input) replay as before.
  const handsBack = lane !== undefined && input.handBackTracking === true && patched(TRACKING_CARRY_PATCH);

  const steps: StepSummary[] = [];
  let currentStep: string | undefined;
  let paused = false;
  setHandler(pauseSignal, () => void (paused = true));
  setHandler(resumeSignal, () => void (paused = false));
  setHandler(iterationStatusQuery, (): IterationStatus => ({ iteration, currentStep, paused, steps }));

  /** Honour a pause between steps: the step in flight always finishes first. A failed tracking call stops here. */
  const gate = async (next: string) => {
    lane?.check();
    currentStep = paused ? `paused before ${next}` : next;
    await condition(() => !paused);
    lane?.check();
    currentStep = next;
  };

  /** Launch planned steps in parallel on one queue and record their summaries. */
  const launch = async (planned: PlannedStep[], acts: Activities, gpuCount?: number) => {
    const entries = planned.map((p) => {
      const summary: StepSummary = { step: p.step, label: p.label, state: 'running', startedAt: new Date().toISOString() };
      steps.push(summary);
      return { p, summary };
    });
    return Promise.all(
      entries.map(async ({ p, summary }) => {
        try {
          // The summary names the activity in the Temporal UI, where every one is `runComputeStep`.
          const result = await acts.runComputeStep.executeWithOptions({ summary: activitySummary(iteration, p.step, p.label) }, [
            {
              step: p.step,
              spec: p.spec,
              label: p.label,
              ...stepTimers(config),
              ...(gpuCount ? { gpuCount } : {}),
            },
          ]);
          Object.assign(summary, {
            state: result.skipped ? 'skipped' : 'done',
            itemsTotal: result.itemsTotal,
            itemsReused: result.itemsReused,
            itemsComputed: result.itemsComputed,
            wallSeconds: result.wallSeconds,
            endedAt: new Date().toISOString(),
          } satisfies Partial<StepSummary>);
          return result;
        } catch (error) {
          summary.state = 'failed';
          summary.endedAt = new Date().toISOString();
          throw error;
        }
      }),
    );
  };

  const runTracking = input.tracking;
  const carried = input.carriedTracking;
  if (lane && carried) {
    // The previous iteration's record goes first, so MLflow sees the calls in the same order as before. The
    // iteration it belongs to has finished: a cancellation of this one does not stop its record half-way.
    void lane.add(() => CancellationScope.nonCancellable(() => light.trackIterationEnd(carried)));
  }
  // The run's first iteration opens the run's MLflow parent run on its lane when the run asks (it has none yet).
  const opening =
    lane && input.openRunTracking && patched(RUN_TRACKING_LANE_PATCH)
      ? lane.add(() => light.trackRunStart(input.openRunTracking!))
      : undefined;
  const curvesOnLane = lane !== undefined && patched(DPO_CURVES_LANE_PATCH);
  const startTracking = (refs: NonNullable<typeof runTracking>) =>
    light.trackIterationStart({ tracking: refs, runKey: input.runKey, iteration, workflowId: workflowInfo().workflowId });
  // On the lane no step needs the iteration's MLflow run before trackIterationEnd (behind it on the lane)
  // and the summary (after the lane is drained): generate starts at once.
  const tracking: Promise<IterationTracking | undefined> = opening
    ? lane!.add(async () => {
        const refs = await opening; // settled: it was the call before this one
        return refs ? startTracking(refs) : undefined;
      })
    : !runTracking
      ? Promise.resolve(undefined)
      : lane
        ? lane.add(() => startTracking(runTracking))
        : Promise.resolve(await startTracking(runTracking));
  // No compute step talks to MLflow: the DPO step writes its curves to metrics.jsonl, which
  // trackIterationEnd delivers through the spooling tracker (one writer, one outage policy).

  try {
    const stats: Record<string, number> = {};
    let model = input.model;
    let dpoDir: string | undefined;
    let curateDir: string | undefined;
    let evaluations: PlannedStep[] = [];
    for (const phase of iterationPhases(config, paths, iteration, input.model)) {
      if (phase.name === 'generate') {
        await gate('sample prompts');
        await light.samplePrompts(promptSampleInput(config, paths, iteration));
      }
      await gate(phase.name);
      const [first] = phase.steps;
      // A multi-GPU step runs on one host's queue, whose worker claims all the GPUs it needs at once.
      const acts =
        phase.runsOn === 'host'
          ? proxyActivities<WorkflowActivities>(computeActivityOptions(config, await gpu.hostTaskQueue()))
          : phase.runsOn === 'cpu'
            ? cpuCompute
            : gpu;
      const results = await launch(phase.steps, acts, phase.gpuCount);
      if (phase.name === 'curate' || phase.name === 'dpo') Object.assign(stats, prefixed(phase.name, results[0]?.stats ?? {}));
      if (phase.name === 'curate') curateDir = first?.spec.out_dir;
      if (phase.name === 'dpo') dpoDir = first?.spec.out_dir;
      if (phase.name === 'dpo' && dpoDir && curvesOnLane) {
        const curves = dpoDir;
        // Into MLflow while merge and evaluate run (behind this iteration's start on the lane: its run exists).
        void lane!.add(async () => {
          const refs = opening ? await opening : runTracking;
          if (refs) {
            const iterationRunId = (await tracking)?.runId;
            await light.trackDpoCurves({ tracking: refs, iterationRunId, iteration, dpoDir: curves });
          }
        });
      }
      if (phase.name === 'merge' && first) model = mergedModel(first);
      if (phase.name === 'evaluate') evaluations = phase.steps;
    }
    const metrics = await light.readEvaluation({ outDirs: evaluations.map((e) => ({ benchmark: e.label, outDir: e.spec.out_dir })) });

    await gate('record');
    const objective = config.evaluate.objective;
    const current = objective === undefined ? undefined : metrics[objective];
    const improved = improvedObjective(config, current, input.previousObjective);
    const endInput = async (refs: NonNullable<typeof runTracking>): Promise<IterationEndTracking> => ({
      tracking: refs,
      iterationRunId: (await tracking)?.runId,
      iteration,
      metrics,
      stats,
      curateDir,
      ...(curvesOnLane ? {} : { dpoDir }),
      evaluateDirs: evaluations.map((e) => e.spec.out_dir),
      artifactRoot: paths.artifactRoot,
      timestamp: Date.now(),
    });
    let trackingEnd: IterationEndTracking | undefined;
    const runRefs = opening ? await opening : runTracking;
    if (runRefs && handsBack) {
      // Built now (its timestamp is this iteration's end); the run runs it once this iteration has returned.
      trackingEnd = await endInput(runRefs);
    } else if (runRefs && lane) {
      void lane.add(async () => light.trackIterationEnd(await endInput(runRefs)));
    } else if (runRefs) {
      await light.trackIterationEnd(await endInput(runRefs));
    }
    // The iteration ends with the calls on its lane: a failed one fails it, as when each was awaited in place.
    await lane?.drain();
    const summary: IterationSummary = { iteration, model, metrics, stats, steps, improved, mlflowRunId: (await tracking)?.runId };
    currentStep = 'done';
    return { ...summary, ...(trackingEnd ? { trackingEnd } : {}), ...(opening ? { runTracking: runRefs } : {}) };
  } catch (error) {
    // Failing for another reason: no tracking write is left in flight; the step's error is the one reported.
    await lane?.settle();
    throw error;
  }
}

function prefixed(prefix: string, values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`${prefix}/${k}`, v]));
}
