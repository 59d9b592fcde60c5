/**
 * Activity options from the config's `activities` section: every GPU step heartbeats on a timer, so a
 * heartbeat timeout several times that cadence catches a dead worker quickly without false alarms.
 */
import type { ActivityOptions } from '@temporalio/workflow';
import { ActivityCancellationType } from '@temporalio/workflow';
import type { CsrConfig } from '../src/config/schema';
import { durationMs } from '../src/shared/duration';
import { CPU_QUEUE } from '../src/shared/task-queues';


/** Options of a long compute step on the given queue. */
export function computeActivityOptions(config: CsrConfig, taskQueue: string): ActivityOptions {
  const a = config.activities;
  return {
    taskQueue,
    startToCloseTimeout: durationMs(a.start_to_close),
    heartbeatTimeout: durationMs(a.heartbeat_timeout),
    // Wait until the activity has killed its process group before the workflow moves on.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      maximumAttempts: a.retry.maximum_attempts,
      initialInterval: durationMs(a.retry.initial_interval),
      backoffCoefficient: a.retry.backoff_coefficient,
      maximumInterval: durationMs(a.retry.maximum_interval),
      nonRetryableErrorTypes: ['ComputeBadSpec', 'ComputeMissingInput', 'ConfigError'],
    },
  };
}

/** Options of a light bookkeeping activity (prompt sampling, MLflow logging). */
export const lightActivityOptions: ActivityOptions = {
  taskQueue: CPU_QUEUE,
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 10, initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute' },
};

/**
 * The step watchdog's timeout for a compute step's input. A config recorded in the history of a run
 * started before `stall_timeout` existed has none: the step then gets the activity's default.
 */
export function stallTimeout(config: CsrConfig): { stallTimeoutMs?: number } {
  const value = config.activities.stall_timeout as string | undefined;
  return value === undefined ? {} : { stallTimeoutMs: durationMs(value) };
}

/** A compute step's timers: the activity's heartbeat cadence (`activities.heartbeat_every`) and the stall watchdog's timeout. */
export function stepTimers(config: CsrConfig): { heartbeatEveryMs: number; stallTimeoutMs?: number } {
  return { heartbeatEveryMs: durationMs(config.activities.heartbeat_every), ...stallTimeout(config) };
}
