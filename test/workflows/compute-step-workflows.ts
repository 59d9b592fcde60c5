/** Workflows of the activity and worker tests: run one compute step with the retry and timeouts a test needs. */
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { Activities, ComputeStepInput, StepResult } from '../../activities';

/** How the test wants the step scheduled. */
export interface RunStepOptions {
  taskQueue: string;
  maximumAttempts: number;
  heartbeatTimeoutMs: number;
}

/** Run one compute step and return its result. */
export async function runStep(input: ComputeStepInput, options: RunStepOptions): Promise<StepResult> {
  const acts = proxyActivities<Activities>({
    taskQueue: options.taskQueue,
    startToCloseTimeout: '5 minutes',
    heartbeatTimeout: options.heartbeatTimeoutMs,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { maximumAttempts: options.maximumAttempts, initialInterval: '200ms', backoffCoefficient: 1 },
  });
  return acts.runComputeStep(input);
}

/** Ask a GPU worker which host queue it belongs to. */
export async function askHostQueue(taskQueue: string): Promise<string> {
  const acts = proxyActivities<Activities>({ taskQueue, startToCloseTimeout: '1 minute' });
  return acts.hostTaskQueue();
}
