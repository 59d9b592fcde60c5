/** Workflow of the secrets test: the tracking activities a run calls, so their inputs and results land in history. */
import { proxyActivities } from '@temporalio/workflow';
import type { createTrackingActivities } from '../../activities/tracking';
import type { CsrConfig } from '../../src/config/schema';
import type { IterationTracking, TrackingRefs } from '../../src/shared/run-types';

type Tracking = ReturnType<typeof createTrackingActivities>;

/** Start the MLflow parent run and the first iteration's run, as `csrRun` and `csrIteration` do. */
export async function trackOnly(config: CsrConfig, runKey: string): Promise<[TrackingRefs, IterationTracking]> {
  const acts = proxyActivities<Tracking>({ startToCloseTimeout: '2 minutes', retry: { maximumAttempts: 1 } });
  const refs = await acts.trackRunStart({ config, configHash: 'h', runKey, workflowId: runKey });
  const iteration = await acts.trackIterationStart({ tracking: refs, runKey, iteration: 1, workflowId: runKey });
  return [refs, iteration];
}
