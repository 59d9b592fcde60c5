import test from 'ava';
import { QuietLogger } from '../workers/quiet-logger';

test('the worker logger drops the by-design "No workflows registered" warnings and keeps every other line', (t) => {
  const seen: string[] = [];
  const logger = new QuietLogger('INFO', (entry) => void seen.push(entry.message));
  logger.warn('No workflows registered, not polling for workflow tasks', { taskQueue: 'csr-gpu' });
  logger.warn('No activities registered, not polling for activity tasks', { taskQueue: 'cli-views' });
  logger.warn('Activity failed', { attempt: 2 });
  logger.info('Worker state changed');
  logger.debug('below the level');
  t.deepEqual(seen, ['Activity failed', 'Worker state changed']);
});

test("webpack's report of the workflow bundle is folded to its last line, unless verbose", (t) => {
  const report = 'asset workflow-bundle-1f2e.js 1.34 MiB [emitted] (name: main)\nruntime modules 937 bytes 4 modules\n' +
    'modules by path ./node_modules/@temporalio/ 300 KiB\nwebpack 5.99.9 compiled successfully in 2345 ms';
  const seen: string[] = [];
  new QuietLogger('INFO', (entry) => void seen.push(entry.message), false).info(report);
  t.deepEqual(seen, ['workflow bundle: webpack 5.99.9 compiled successfully in 2345 ms']);
  const verbose: string[] = [];
  new QuietLogger('INFO', (entry) => void verbose.push(entry.message), true).info(report);
  t.deepEqual(verbose, [report]);
  const errors: string[] = [];
  new QuietLogger('INFO', (entry) => void errors.push(entry.message), false).error(report);
  t.deepEqual(errors, [report], 'a failed build keeps its whole report');
});
