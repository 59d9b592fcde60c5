/** Signals and queries of the CSR workflows: defined once, used by the workflows and the CLI. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { IterationStatus, ParamOverrides, ParamPatch, RunStatus } from '../src/shared/run-types';
import type { SweepStatus } from '../src/shared/sweep-types';

/** Pause after the step in flight finishes (nothing is killed). */
export const pauseSignal = defineSignal('pause');
/** Go on after a pause. */
export const resumeSignal = defineSignal('resume');
/**
 * Change parameters from the next iteration on (the iteration in flight keeps its own). A patch that would
 * make the config invalid is refused with a `ConfigError` naming each bad field, and nothing changes; an
 * accepted one returns the overrides now in force.
 */
export const setParamsUpdate = defineUpdate<ParamOverrides, [ParamPatch]>('setParams');

export const runStatusQuery = defineQuery<RunStatus>('runStatus');
export const iterationStatusQuery = defineQuery<IterationStatus>('iterationStatus');
export const sweepStatusQuery = defineQuery<SweepStatus>('sweepStatus');
