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
