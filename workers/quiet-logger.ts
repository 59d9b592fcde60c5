/**
 * The SDK's logger without the warnings a worker of ours is meant to trigger: a GPU worker has no
 * workflows and a test worker may have no activities, so "No workflows registered, not polling for
 * workflow tasks" is by design, and reads to a person as if something were missing.
 */
import { DefaultLogger, type LogLevel, type LogMetadata } from '@temporalio/worker';

/** Messages that describe a worker doing what it was built to do. */
const BY_DESIGN = /^No (workflows|activities) registered, not polling for (workflow|activity) tasks/;

/** The last line of webpack's build report (`webpack 5.99.9 compiled successfully in 2345 ms`). */
const WEBPACK_DONE = /^webpack \S+ compiled.*$/m;

/**
 * `DefaultLogger` minus the by-design warnings, and the workflow bundle's webpack report (a screen of
 * module sizes) folded to its last line unless `verbose` (CSR_VERBOSE=1).
 */
export class QuietLogger extends DefaultLogger {
  constructor(
    level?: LogLevel,
    logFunction?: ConstructorParameters<typeof DefaultLogger>[1],
    private readonly verbose = process.env.CSR_VERBOSE === '1',
  ) {
    super(level, logFunction);
  }

  override log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (BY_DESIGN.test(message)) return;
    const webpack = level === 'INFO' && !this.verbose ? WEBPACK_DONE.exec(message) : null;
    super.log(level, webpack && message.includes('\n') ? `workflow bundle: ${webpack[0]}` : message, meta);
  }
}
