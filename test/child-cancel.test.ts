/**
 * Cancelling a parent reaches a child that has continued as new (a sweep's `csrRun` children do after
 * every iteration), on a real Temporal dev server.
 */
import anyTest, { type TestFn } from 'ava';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createTestEnv, eventually } from './helpers/temporal-harness';

const test = anyTest as TestFn<{ env: TestWorkflowEnvironment }>;
const workflowsPath = require.resolve('./workflows/child-chain-workflows');

test.before(async (t) => {
  t.context.env = await createTestEnv();
});
test.after.always(async (t) => {
  await t.context.env?.teardown();
});

/** Start `parent`, wait for its child's second run, cancel the parent; the child's final status. */
async function cancelAfterContinueAsNew(env: TestWorkflowEnvironment, parent: string): Promise<string> {
  const taskQueue = `child-cancel-${parent}`;
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath });
  return worker.runUntil(async () => {
    const childId = `${parent}-child-${Date.now()}`;
    const handle = await env.client.workflow.start(parent, { taskQueue, workflowId: `${parent}-${Date.now()}`, args: [childId] });
    const child = env.client.workflow.getHandle(childId);
    // The second run is the one the child sleeps in: its first run has continued as new.
    await eventually('the child to continue as new', async () => {
      const description = await child.describe().catch(() => undefined);
      return description && description.runId !== description.raw.workflowExecutionInfo?.firstRunId ? true : undefined;
    });
    await handle.cancel();
    // A parent whose cancellation never reaches the child waits for it for ever: give it 5 s.
    await Promise.race([handle.result().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 5_000))]);
    const status = await eventually('the child to close', async () => {
      const { status: now } = await child.describe();
      return now.name === 'RUNNING' ? undefined : now.name;
    }, 5_000).catch(() => 'RUNNING');
    for (const open of [child, handle]) await open.terminate('test over').catch(() => undefined);
    return status;
  });
}

test('the plain SDK child call leaves a continued-as-new child running (why executeChildRun exists)', async (t) => {
  t.is(await cancelAfterContinueAsNew(t.context.env, 'plainParent'), 'RUNNING');
});

test('executeChildRun cancels the child in its latest run', async (t) => {
  t.is(await cancelAfterContinueAsNew(t.context.env, 'followingParent'), 'CANCELLED');
});
