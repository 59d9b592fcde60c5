/** Workflows of the child-cancellation test: a parent whose child continues as new before it is cancelled. */
import { continueAsNew, executeChild, sleep, workflowInfo } from '@temporalio/workflow';
import { executeChildRun } from '../../workflows/child-runs';

/** Continues as new `segments` times, then sleeps for an hour (until cancelled). */
export async function chainChild(segments: number): Promise<string> {
  if (segments > 0) await continueAsNew<typeof chainChild>(segments - 1);
  await sleep('1 hour');
  return workflowInfo().runId;
}

/** Starts one chain child with the SDK's plain executeChild (the behaviour the fix works around). */
export async function plainParent(childId: string): Promise<string> {
  return executeChild(chainChild, { workflowId: childId, args: [1] });
}

/** Starts one chain child through `executeChildRun`, as the sweep does. */
export async function followingParent(childId: string): Promise<string> {
  return executeChildRun(chainChild, { workflowId: childId, args: [1] });
}
