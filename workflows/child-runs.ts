/**
 * A child workflow that may continue as new, cancelled with its parent.
 *
 * Why not plain `executeChild`: the SDK sends a parent's cancellation to the child run it started. When
 * that run has continued as new (as every multi-iteration `csrRun` does), the request reaches a closed
 * run and the live one never hears of it: `csr cancel SWEEP` left every child running. Here the child is
 * started with cancellation type ABANDON, and on cancellation the parent asks the child's *workflow id*
 * (no run id: the latest run) to cancel. The parent does not wait for the child to finish stopping: the
 * child's own cancellation handling (killing its compute processes, closing its MLflow run) does that.
 */
import {
  CancellationScope,
  type ChildWorkflowOptions,
  type WithWorkflowArgs,
  ChildWorkflowCancellationType,
  type Workflow,
  getExternalWorkflowHandle,
  isCancellation,
  ParentClosePolicy,
  startChild,
} from '@temporalio/workflow';

/** Like `executeChild`, but a cancellation reaches the child's latest run. */
export async function executeChildRun<T extends Workflow>(
  workflow: T,
  options: WithWorkflowArgs<T, ChildWorkflowOptions> & { workflowId: string },
): Promise<Awaited<ReturnType<T>>> {
  // By type name, as startChild(workflow) does itself: that overload's options type refuses cancellationType.
  // REQUEST_CANCEL, not the default TERMINATE: a parent that closes (cancelled here, or terminated by an
  // operator) must let the child stop cleanly, killing its compute processes and closing its MLflow run.
  const handle = await startChild<T>(workflow.name, {
    ...options,
    cancellationType: ChildWorkflowCancellationType.ABANDON,
    parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
  });
  try {
    return (await handle.result()) as Awaited<ReturnType<T>>;
  } catch (error) {
    if (!isCancellation(error)) throw error;
    await CancellationScope.nonCancellable(async () => {
      try {
        await getExternalWorkflowHandle(options.workflowId).cancel();
      } catch {
        // Already closed: nothing left to cancel.
      }
    });
    throw error;
  }
}
