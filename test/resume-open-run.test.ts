import anyTest, { type TestFn } from 'ava';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { openRunRefusal, openRunsOfKey } from '../app/cli/open-runs';
import { createTestEnv } from './helpers/temporal-harness';

const test = anyTest as TestFn<{ env: TestWorkflowEnvironment }>;

test.before(async (t) => {
  t.context.env = await createTestEnv();
});

test.after.always(async (t) => {
  await t.context.env?.teardown();
});

// No worker polls this queue: a workflow started on it stays open, as a run in flight does.
const start = (t: { context: { env: TestWorkflowEnvironment } }, workflowId: string) =>
  t.context.env.client.workflow.start('csrRun', { taskQueue: 'nobody-polls-this', workflowId, args: [{}] });

test('a resume is refused while the run or a resume of its key is open, and allowed once both end', async (t) => {
  const { client } = t.context.env;
  const run = await start(t, 'toy-abc12345-x1');
  t.deepEqual(await openRunsOfKey(client, 'toy-abc12345-x1', 'toy-abc12345-x1'), ['toy-abc12345-x1']);
  const refusal = openRunRefusal('toy-abc12345-x1', ['toy-abc12345-x1']);
  t.regex(refusal ?? '', /run toy-abc12345-x1 is still open; .*cancel it first \(npx csr cancel toy-abc12345-x1\)/);

  const resumed = await start(t, 'toy-abc12345-x1-resume-k1');
  await run.terminate('test: the first run ended');
  // The old run is closed, but its resume still writes the same folders: resuming the old id again is refused too.
  t.deepEqual(await openRunsOfKey(client, 'toy-abc12345-x1', 'toy-abc12345-x1'), ['toy-abc12345-x1-resume-k1']);
  // A run of another key is no obstacle.
  const other = await start(t, 'toy-ffff0000-x2');
  await resumed.terminate('test: the resume ended');
  t.deepEqual(await openRunsOfKey(client, 'toy-abc12345-x1', 'toy-abc12345-x1'), []);
  t.is(openRunRefusal('toy-abc12345-x1', []), undefined);
  await other.terminate('test: done');
});
