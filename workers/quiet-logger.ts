/**
 * The SDK's logger without the warnings a worker of ours is meant to trigger: a GPU worker has no
 * workflows and a test worker may have no activities, so "No workflows registered, not polling for
 * workflow tasks" is by design, and reads to a person as if something were missing.
 */
import { DefaultLogger, type LogLevel, type LogMetadata } from '@temporalio/worker';

/** Messages that describe a worker doing what it was built to do. */
const BY_DESIGN = /^No (workflows|activities) registered, not polling for (workflow|activity) tasks/;

/** `DefaultLogger` minus the by-design warnings. */
export class QuietLogger extends DefaultLogger {
  override log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (BY_DESIGN.test(message)) return;
    super.log(level, message, meta);
  }
}
