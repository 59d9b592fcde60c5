/** Exponential backoff with jitter for MLflow calls; retries only what a later attempt can fix. */
import { isRetryable, MlflowError } from './errors';

/** How often and how patiently to retry a failed call. */
export interface RetryOptions {
  /** Attempts in total, the first included; 1 disables retrying. @default 5 */
  attempts?: number;
  /** Delay before the first retry; each later one doubles it. @default 250 */
  initialDelayMs?: number;
  /** Upper bound of one delay. @default 8000 */
  maxDelayMs?: number;
}

/** {@link RetryOptions} with defaults filled in. */
export type ResolvedRetryOptions = Required<RetryOptions>;

/** Fill defaults and reject nonsense (zero attempts, negative delays). */
export function resolveRetryOptions(options: RetryOptions = {}): ResolvedRetryOptions {
  const resolved = { attempts: 5, initialDelayMs: 250, maxDelayMs: 8000, ...options };
  if (!Number.isInteger(resolved.attempts) || resolved.attempts < 1) {
    throw new TypeError(`retry.attempts: expected an integer >= 1, got ${resolved.attempts}`);
  }
  if (resolved.initialDelayMs < 0 || resolved.maxDelayMs < resolved.initialDelayMs) {
    throw new TypeError(
      `retry delays: expected 0 <= initialDelayMs <= maxDelayMs, got ${resolved.initialDelayMs} and ${resolved.maxDelayMs}`,
    );
  }
  return resolved;
}

/** Delay before retry number `retry` (1-based): half fixed, half random, so many clients do not retry in lockstep. */
export function backoffDelay(retry: number, options: ResolvedRetryOptions): number {
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** (retry - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Run `call` until it succeeds, fails with a non-retryable error, or the attempts are used up; the
 * last error is rethrown with the number of attempts added to its message.
 */
export async function withRetry<T>(call: () => Promise<T>, options: ResolvedRetryOptions): Promise<T> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!isRetryable(error)) throw error;
      if (attempt >= options.attempts) {
        if (attempt > 1 && error instanceof MlflowError) {
          error.message += ` (gave up after ${attempt} attempts over ${((Date.now() - started) / 1000).toFixed(1)}s)`;
        }
        throw error;
      }
      await sleep(backoffDelay(attempt, options));
    }
  }
}
