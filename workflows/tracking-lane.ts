/**
 * The tracking lane: MLflow tracking activities run one after another, in the order the workflow adds
 * them (so MLflow sees its writes in the same order as when each was awaited in turn), while compute
 * steps go on without waiting for them. Whoever owns a lane drains it before it ends: a failed tracking
 * call then fails the workflow as it did when awaited in place, and no write is left in flight.
 *
 * After a failed call the calls behind it do not start (as when the first failure ended the workflow);
 * they reject with the same error.
 */

/** Workflows started before the lane awaited each tracking call in place; they replay that branch. */
export const TRACKING_LANE_PATCH = 'tracking-lane';

/**
 * An iteration's `trackIterationEnd` is carried onto the next iteration's lane (the run hands it over), so the next
 * iteration starts without waiting for it; the run awaits the last one before it ends. Runs started before drain
 * each iteration's lane, end included, before the iteration returns; they replay that branch.
 */
export const TRACKING_CARRY_PATCH = 'tracking-carry';

/**
 * The run's MLflow parent run is opened (trackRunStart) by its first iteration, first on that iteration's lane,
 * so the iteration starts computing at once (creating a run waits half a second for racers). Runs started
 * before opened it beside their preparation and waited for it before the first iteration; they replay that branch.
 */
export const RUN_TRACKING_LANE_PATCH = 'run-tracking-lane';

/**
 * The DPO step's curves go on the lane as soon as the step has finished (trackDpoCurves), not in the iteration's
 * closing record: at the end of the last iteration nothing may run beside them. Iterations started before
 * delivered them in trackIterationEnd; they replay that branch.
 */
export const DPO_CURVES_LANE_PATCH = 'dpo-curves-lane';

/** A chain of tracking calls that compute steps do not wait for. */
export class TrackingLane {
  private tail: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | undefined;

  /** Start `call` once every call added before has finished; its result, for a later call that needs it. */
  add<T>(call: () => Promise<T>): Promise<T> {
    const result = this.tail.then(() => {
      if (this.failure) throw this.failure.error;
      return call();
    });
    this.tail = result.then(
      () => undefined,
      (error: unknown) => void (this.failure ??= { error }),
    );
    // Nobody may await `result` (a fire-and-forget write): its failure surfaces through drain(), not as an
    // unhandled rejection, which would fail the workflow task rather than the workflow.
    void result.catch(() => undefined);
    return result;
  }

  /** Throw the first failure, if a call has failed: a workflow checks between its steps, to stop early. */
  check(): void {
    if (this.failure) throw this.failure.error;
  }

  /** Wait for every call added so far; rethrow the first failure. */
  async drain(): Promise<void> {
    await this.tail;
    this.check();
  }

  /** Wait for every call added so far, ignoring failures (a workflow already failing for another reason). */
  async settle(): Promise<void> {
    await this.tail;
  }
}
