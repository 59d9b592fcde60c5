/**
 * A CSR run: prepare (toy world, prompt set, MLflow runs), then iteration 0 (the base model's
 * evaluation) and iterations 1..N, each a child workflow, continuing-as-new between iterations so
 * the history of a long run stays small. The state that crosses continue-as-new is `CsrRunInput`.
 */
import {
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { WorkflowActivities } from '../activities/light-activities';
import type { CsrRunInput, IterationSummary, RunStatus, RunTrackingStart } from '../src/shared/run-types';
import { continuesAfter, iterationStartModel } from '../src/shared/plan';
import { runSearchAttributes } from '../src/shared/search-attributes';
import { computeActivityOptions, lightActivityOptions } from './activity-options';
import { GPU_QUEUE } from '../src/shared/task-queues';
import { csrIteration } from './csr-iteration';
import { safeKeyFrom } from '../src/shared/safe-path';
import { patchedOverrides, validRunInput } from './validate-input';
import { iterationStatusQuery, pauseSignal, resumeSignal, runStatusQuery, setParamsUpdate } from './messages';
import { RUN_TRACKING_LANE_PATCH, TRACKING_CARRY_PATCH, TRACKING_LANE_PATCH } from './tracking-lane';

/** The Temporal UI's line for an iteration's workflow: `iteration 2 of 3 · toy-csr` (0 = the starting model). */
export function iterationSummaryText(iteration: number, iterations: number, configName: string): string {
  return `${iteration === 0 ? 'iteration 0 (starting model)' : `iteration ${iteration} of ${iterations}`} · ${configName}`;
}

/** Run (or go on with) a CSR run from its state. */
export async function csrRun(input: CsrRunInput): Promise<IterationSummary[]> {
  // Scheduled runs share one input; each takes its own workflow id (schedule id + time) as key.
  const runKey = input.runKey || safeKeyFrom(workflowInfo().workflowId);
  // Whoever started us (CLI, UI, schedule), the config is checked before any work, as the CLI does.
  const state: CsrRunInput = { ...validRunInput(input, runKey), runKey, history: [...input.history] };
  const light = proxyActivities<WorkflowActivities>(lightActivityOptions);
  const gpu = proxyActivities<WorkflowActivities>(computeActivityOptions(state.config, GPU_QUEUE));

  let paused = false;
  let phase: RunStatus['phase'] = state.paths ? 'running' : 'preparing';
  let currentChildId: string | undefined;
  let currentIteration: number | undefined;
  const iterations = () => state.overrides?.iterations ?? state.config.iterations;

  setHandler(pauseSignal, () => void (paused = true));
  setHandler(resumeSignal, () => void (paused = false));
  setHandler(
    setParamsUpdate,
    (patch) => (state.overrides = patchedOverrides(state.config, state.overrides, patch)),
    // A refused patch is answered to its sender and never enters the history.
    { validator: (patch) => void patchedOverrides(state.config, state.overrides, patch) },
  );
  setHandler(
    runStatusQuery,
    (): RunStatus => ({
      workflowId: workflowInfo().workflowId,
      runKey: state.runKey,
      phase: paused && phase === 'running' ? 'paused' : phase,
      iterations: iterations(),
      currentIteration,
      currentChildId,
      paused,
      history: state.history,
      resumedFrom: state.resumedFrom,
      objective: state.config.evaluate.objective,
      objectiveDirection: state.config.evaluate.objective_direction,
      ...(state.tracking ? { mlflow: { experimentName: state.tracking.experimentName, runId: state.tracking.parentRunId } } : {}),
    }),
  );

  /**
   * Make the run filterable in the Temporal UI (config, last iteration, its objective value). Only when
   * the starter found the attributes registered; histories recorded without the flag replay unchanged.
   */
  const publishSearchAttributes = () => {
    if (!state.searchAttributes) return;
    upsertSearchAttributes(runSearchAttributes(state.config.name, state.history[state.history.length - 1], state.config.evaluate.objective));
  };
  publishSearchAttributes();

  /**
   * Log the last finished iteration, whose record no later iteration carried (patch 'tracking-carry'), even while
   * the run is being cancelled: that iteration has finished.
   */
  const trackPending = async () => {
    const pending = state.pendingTracking;
    if (!pending) return;
    await CancellationScope.nonCancellable(() => light.trackIterationEnd(pending));
    state.pendingTracking = undefined;
  };

  /** Close the MLflow parent run, even while the run is being cancelled. */
  const endTracking = (status: 'FINISHED' | 'FAILED' | 'KILLED') => {
    const tracking = state.tracking;
    return tracking ? CancellationScope.nonCancellable(() => light.trackRunEnd({ tracking, status })) : Promise.resolve();
  };

  /** What opens (or finds) the run's MLflow parent run. */
  const runTrackingStart = (): RunTrackingStart => ({
    config: state.config,
    configHash: state.configHash,
    runKey: state.runKey,
    workflowId: workflowInfo().workflowId,
    codeVersion: state.codeVersion,
    resumedFrom: state.resumedFrom,
    sweep: state.sweep,
  });
  /** Set by the preparation (patch 'run-tracking-lane'): the first iteration opens the MLflow parent run on its lane. */
  let openRunTracking = false;

  const prepare = async () => {
    const startTracking = () => light.trackRunStart(runTrackingStart());
    const preparePaths = async () => {
      const prepared = await light.prepareRun({ config: state.config, runKey: state.runKey, configHash: state.configHash });
      const built = prepared.toyworldBuild ? await gpu.runComputeStep(prepared.toyworldBuild) : undefined;
      state.paths = await light.resolveRunPaths({
        config: state.config,
        runKey: state.runKey,
        toyworldDir: prepared.toyworldDir,
        toyworldBuildDir: built?.outDir,
        iteration0Key: state.iteration0Key,
      });
    };
    if (patched(RUN_TRACKING_LANE_PATCH)) {
      // Nothing waits for the parent MLflow run (creating one waits half a second for racers): the first
      // iteration opens it on its tracking lane, where its own tracking calls need it, and hands its refs back.
      await preparePaths();
      openRunTracking = true;
    } else if (patched(TRACKING_LANE_PATCH)) {
      // The parent MLflow run starts beside the preparation (neither needs the other). It stays awaited
      // before the first iteration: the iterations' MLflow runs nest under its id (TrackingRefs).
      const started = startTracking();
      void started.catch(() => undefined); // awaited below on every path; no unhandled rejection meanwhile
      try {
        await preparePaths();
      } catch (error) {
        // The run fails for its preparation; endTracking then closes the parent run if it was opened.
        state.tracking = await started.catch(() => undefined);
        throw error;
      }
      state.tracking = await started;
    } else {
      await preparePaths();
      state.tracking = await startTracking();
    }
    phase = 'running';
  };

  /** The next iteration as a child workflow; true when the run should go on. */
  const runIteration = async (): Promise<boolean> => {
    const paths = state.paths!;
    const iteration = state.nextIteration;
    currentIteration = iteration;
    await condition(() => !paused);
    const { iterations: _count, ...overrides } = state.overrides ?? {};
    const config = { ...state.config, ...overrides };
    const previous = state.history[state.history.length - 1];
    const objective = state.config.evaluate.objective;
    currentChildId = `${workflowInfo().workflowId}/iter-${iteration}`;
    // The child runs the previous iteration's MLflow record first on its lane and hands its own back, which
    // the next one (or this run, at its end) carries on; runs started before let each child wait for its own.
    const carry = patched(TRACKING_CARRY_PATCH) ? { carriedTracking: state.pendingTracking, handBackTracking: true } : {};
    state.pendingTracking = undefined; // the child's now
    const opens = openRunTracking ? { openRunTracking: runTrackingStart() } : {};
    openRunTracking = false;
    const { trackingEnd, runTracking, ...summary } = await executeChild(csrIteration, {
      workflowId: currentChildId,
      // What the Temporal UI lists for the child, rather than its id alone.
      staticSummary: iterationSummaryText(iteration, iterations(), state.config.name),
      args: [
        {
          config,
          configHash: state.configHash,
          runKey: state.runKey,
          iteration,
          paths,
          tracking: state.tracking,
          model: iterationStartModel(paths, iteration),
          previousObjective: objective && previous ? previous.metrics[objective] : undefined,
          parentWorkflowId: workflowInfo().workflowId,
          ...carry,
          ...opens,
        },
      ],
    });
    if (opens.openRunTracking) state.tracking = runTracking;
    state.pendingTracking = trackingEnd;
    state.history.push(summary);
    state.nextIteration = iteration + 1;
    publishSearchAttributes();
    currentChildId = undefined;
    return continuesAfter(state.config, summary.improved);
  };

  try {
    if (!state.paths) await prepare();
    while (state.nextIteration <= iterations()) {
      if (!(await runIteration())) {
        phase = 'stopped';
        break;
      }
      if (state.nextIteration <= iterations()) {
        // Signals that arrived meanwhile are folded into `state` before the history is cut.
        await condition(allHandlersFinished);
        await continueAsNew<typeof csrRun>(state);
      }
    }
  } catch (error) {
    if (error instanceof ContinueAsNew) throw error;
    phase = isCancellation(error) ? 'stopped' : 'failed';
    if (!state.tracking && patched(RUN_TRACKING_LANE_PATCH)) {
      // Failed before its first iteration handed the parent MLflow run back: find (or make) it to close it.
      const start = runTrackingStart();
      state.tracking = await CancellationScope.nonCancellable(() => light.trackRunStart(start)).catch(() => undefined);
    }
    // The run fails for its own reason: a failure to log its last finished iteration is not the one to report.
    await trackPending().catch(() => undefined);
    await endTracking(isCancellation(error) ? 'KILLED' : 'FAILED');
    throw error;
  }
  if (state.history.length === 0) throw ApplicationFailure.nonRetryable('the run had no iteration to do', 'EmptyRun');
  if (phase !== 'stopped') phase = 'done';
  try {
    // The last iteration's record: nothing else waits for it, but the run ends only once it is in MLflow.
    await trackPending();
  } catch (error) {
    phase = 'failed';
    await endTracking('FAILED');
    throw error;
  }
  await endTracking('FINISHED');
  return state.history;
}

export { iterationStatusQuery };
