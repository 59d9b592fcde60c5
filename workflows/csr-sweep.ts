/**
 * A sweep: a grid of CSR runs, one child `csrRun` per cell and seed, under one MLflow run.
 *
 * Work that every run would repeat is done once first: the toy world (built by the first baseline's
 * preparation, then found in its cache) and iteration 0, the evaluation of the starting model, which
 * runs that share the model, the benchmarks and the evaluation settings read from one shared folder
 * (`SweepInput.baselines`; the children's own iteration-0 steps then find a matching manifest and are
 * skipped). Child workflow ids derive from this workflow's id and run keys from the sweep key, so a
 * resumed sweep (same key, new workflow id) reruns every child and each one skips the steps it finished.
 *
 * Deterministic and reference-only: the plan (configs, run keys, baseline groups) was resolved by the
 * CLI; the table at the end is a pure function of the children's results.
 */
import {
  CancellationScope,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { WorkflowActivities } from '../activities/light-activities';
import type { PlannedStep } from '../src/shared/plan';
import { evaluateSteps } from '../src/shared/plan';
import type { IterationSummary } from '../src/shared/run-types';
import { bestCell, summarizeSweep } from '../src/shared/sweep-table';
import type { SweepBaseline, SweepInput, SweepResult, SweepRunState, SweepStatus } from '../src/shared/sweep-types';
import { GPU_QUEUE } from '../src/shared/task-queues';
import { computeActivityOptions, lightActivityOptions, stepTimers } from './activity-options';
import { executeChildRun } from './child-runs';
import { csrRun } from './csr-run';
import { sweepStatusQuery } from './messages';
import { validRunInput } from './validate-input';

/** Run every cell of a sweep with every seed; returns the table of mean +- sd per cell and metric. */
export async function csrSweep(input: SweepInput): Promise<SweepResult> {
  // Every cell's config is checked before the first child starts, with the CLI's message.
  for (const plan of input.runs) validRunInput(plan.input, plan.input.runKey);
  const workflowId = workflowInfo().workflowId;
  const light = proxyActivities<WorkflowActivities>(lightActivityOptions);
  let phase: SweepStatus['phase'] = 'tracking';
  const runs: SweepRunState[] = input.runs.map((plan) => ({
    cell: plan.cell,
    seed: plan.seed,
    runKey: plan.input.runKey,
    workflowId: childId(workflowId, plan.cell, plan.seed),
    state: 'pending',
  }));
  setHandler(sweepStatusQuery, (): SweepStatus => ({ sweepKey: input.sweepKey, phase, runs }));

  const tracking = await light.trackSweepStart({
    experimentName: input.experimentName,
    sweepKey: input.sweepKey,
    workflowId,
    grid: input.grid,
    seeds: input.seeds,
    configFile: input.configFile,
    codeVersion: input.codeVersion,
    resumedFrom: input.resumedFrom,
  });
  const end = (status: 'FINISHED' | 'FAILED' | 'KILLED', result?: Omit<SweepResult, 'runs' | 'direction'>) =>
    light.trackSweepEnd({
      experimentName: input.experimentName,
      sweepKey: input.sweepKey,
      parentRunId: tracking.parentRunId,
      status,
      ...(result ? { table: result.table, best: result.best, objective: input.objective, direction: input.direction } : {}),
    });

  try {
    phase = 'baseline';
    await computeBaselines(input.baselines, light);

    phase = 'running';
    const startRun = async (index: number) => {
      const plan = input.runs[index]!;
      const state = runs[index]!;
      state.state = 'running';
      try {
        const history = await executeChildRun(csrRun, {
          workflowId: state.workflowId,
          args: [
            {
              ...plan.input,
              sweep: { key: input.sweepKey, ...(tracking.parentRunId ? { parentRunId: tracking.parentRunId } : {}) },
              ...(input.resumedFrom ? { resumedFrom: childId(input.resumedFrom, plan.cell, plan.seed) } : {}),
            },
          ],
        });
        Object.assign(state, outcome(history));
        state.state = 'done';
      } catch (error) {
        if (isCancellation(error)) throw error;
        // One failed cell does not stop the others; the table says which seeds it rests on.
        state.state = 'failed';
        state.failure = (error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message;
      }
    };
    // As many children at once as asked (all by default): the workers' task slots are the real limit.
    let next = 0;
    const lane = async () => {
      while (next < runs.length) await startRun(next++);
    };
    await Promise.all(Array.from({ length: Math.min(input.maxParallel ?? runs.length, runs.length) }, lane));

    phase = 'summarizing';
    const table = summarizeSweep(input.cells, runs);
    const best = bestCell(table, input.objective, input.direction);
    const failed = runs.some((run) => run.state === 'failed');
    await end(failed ? 'FAILED' : 'FINISHED', { table, best, objective: input.objective });
    phase = failed ? 'failed' : 'done';
    return {
      table,
      ...(best !== undefined ? { best } : {}),
      ...(input.objective ? { objective: input.objective } : {}),
      direction: input.direction,
      runs,
      ...(tracking.parentRunId ? { mlflowParentRunId: tracking.parentRunId } : {}),
    };
  } catch (error) {
    phase = 'failed';
    await CancellationScope.nonCancellable(() => end(isCancellation(error) ? 'KILLED' : 'FAILED'));
    throw error;
  }
}

/** Child workflow id of a cell and seed: stable, so a sweep's children are found by its id. */
function childId(sweepWorkflowId: string, cell: number, seed: number): string {
  return `${sweepWorkflowId}/c${cell}-s${seed}`;
}

/** Metrics and computed items per iteration of a finished run (index = iteration). */
function outcome(history: IterationSummary[]): Pick<SweepRunState, 'metricsByIteration' | 'computedByIteration'> {
  const metricsByIteration: Record<string, number>[] = [];
  const computedByIteration: number[] = [];
  for (const summary of history) {
    metricsByIteration[summary.iteration] = summary.metrics;
    computedByIteration[summary.iteration] = summary.steps.reduce((sum, step) => sum + (step.itemsComputed ?? 0), 0);
  }
  return { metricsByIteration, computedByIteration };
}

/**
 * Iteration 0 of each baseline group, computed once before any child starts (children running it at
 * the same time would race in one folder). Preparation goes one group at a time so the toy world is
 * built once; the evaluations then run side by side.
 */
async function computeBaselines(baselines: SweepBaseline[], light: WorkflowActivities): Promise<void> {
  const launches: { baseline: SweepBaseline; step: PlannedStep }[] = [];
  for (const baseline of baselines) {
    const { config, key, configHash } = baseline;
    const gpu = proxyActivities<WorkflowActivities>(computeActivityOptions(config, GPU_QUEUE));
    const prepared = await light.prepareRun({ config, runKey: key, configHash });
    const built = prepared.toyworldBuild ? await gpu.runComputeStep(prepared.toyworldBuild) : undefined;
    const paths = await light.resolveRunPaths({ config, runKey: key, toyworldDir: prepared.toyworldDir, toyworldBuildDir: built?.outDir });
    for (const step of evaluateSteps(config, paths, 0, paths.baseModel)) launches.push({ baseline, step });
  }
  await Promise.all(
    launches.map(({ baseline, step }) =>
      proxyActivities<WorkflowActivities>(computeActivityOptions(baseline.config, GPU_QUEUE)).runComputeStep({
        step: step.step,
        spec: step.spec,
        label: `iteration 0 ${step.label}`,
        ...stepTimers(baseline.config),
      }),
    ),
  );
}
