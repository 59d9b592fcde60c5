/**
 * The step watchdog: a compute step that prints no event for `timeoutMs` is presumed hung and killed,
 * and the attempt fails retryably. The activity's timer heartbeat keeps Temporal from seeing a hung
 * child (that is its job: model loading and checkpoint saves print nothing for minutes), so without
 * this a stuck step would hold its GPU until the start-to-close timeout, on every attempt.
 */
import { ApplicationFailure } from '@temporalio/common';

/** `ApplicationFailure.type` of a step killed by the watchdog (retryable). */
export const STALLED_FAILURE = 'ComputeStalled';

/** Default of `activities.stall_timeout`: 30 minutes. */
export const DEFAULT_STALL_TIMEOUT_MS = 30 * 60_000;

/** Aborts its `signal` when `touch()` has not been called for `timeoutMs`. */
export class StallWatchdog {
  private readonly controller = new AbortController();
  private last = Date.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly timeoutMs: number,
    private readonly label: string,
  ) {
    if (!(timeoutMs > 0)) throw new TypeError(`stall timeout: expected a number of ms > 0, got ${timeoutMs}`);
  }

  /** Aborted (with the stall failure as reason) once the step has been silent too long. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once the watchdog fired. */
  get fired(): boolean {
    return this.controller.signal.aborted;
  }

  /** Start watching; the clock starts now. */
  start(): void {
    this.last = Date.now();
    // Checked often enough to fire within ~1/4 of the timeout of the moment it is due.
    this.timer = setInterval(() => this.check(), Math.max(Math.min(this.timeoutMs / 4, 5000), 50));
    this.timer.unref();
  }

  /** The step said something: it is alive. */
  touch(): void {
    this.last = Date.now();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    const silentMs = Date.now() - this.last;
    if (silentMs < this.timeoutMs || this.fired) return;
    this.stop();
    this.controller.abort(
      ApplicationFailure.retryable(
        `${this.label}: no progress for ${Math.round(silentMs / 1000)} s (activities.stall_timeout is ` +
          `${Math.round(this.timeoutMs / 1000)} s); the step was killed and will be retried`,
        STALLED_FAILURE,
      ),
    );
  }
}
