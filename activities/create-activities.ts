/**
 * The activities of a worker, built from its dependencies (its GPUs, the host's lease table, its
 * environment), so each worker in one process gets its own pinned set and tests can build their own.
 */
import { type ComputeStepDeps, createRunComputeStep } from './compute-step';

/** Everything a worker's activities depend on. */
export interface ActivityDeps extends ComputeStepDeps {
  /** Task queue of this host's multi-GPU worker, answered by `hostTaskQueue`. */
  hostQueue: string;
}

/** Build the activities one worker registers. */
export function createActivities(deps: ActivityDeps) {
  return {
    runComputeStep: createRunComputeStep(deps),
    /**
     * The task queue of the host this activity ran on: a workflow asks on `csr-gpu` (so a GPU host
     * answers, not the CPU worker's machine), then sends a multi-GPU step (DPO) with `gpuCount` to
     * that host's queue, where all the leases it needs are on one machine.
     */
    async hostTaskQueue(): Promise<string> {
      return deps.hostQueue;
    },
  };
}

/** The activity interface, for `proxyActivities<Activities>()` in workflows (import it as a type only). */
export type Activities = ReturnType<typeof createActivities>;
