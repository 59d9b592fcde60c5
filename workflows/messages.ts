/** Signals and queries of the CSR workflows: defined once, used by the workflows and the CLI. */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { IterationStatus, ParamOverrides, RunStatus } from '../src/shared/run-types';
import type { SweepStatus } from '../src/shared/sweep-types';

/** Pause after the step in flight finishes (nothing is killed). */
export const pauseSignal = defineSignal('pause');
/** Go on after a pause. */
export const resumeSignal = defineSignal('resume');
/** Change parameters from the next iteration on (the iteration in flight keeps its own). */
export const setParamsSignal = defineSignal<[ParamOverrides]>('setParams');

export const runStatusQuery = defineQuery<RunStatus>('runStatus');
export const iterationStatusQuery = defineQuery<IterationStatus>('iterationStatus');
export const sweepStatusQuery = defineQuery<SweepStatus>('sweepStatus');
