/**
 * In the Temporal UI every compute step is the activity `runComputeStep`; its summary names it
 * (`iter 0 · evaluate · toy_chair_dev`). A real `csrIteration` (iteration 0) on a dev server, with
 * stand-in activities, records a summary on each step's scheduled event.
 */
import * as path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { defaultPayloadConverter } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../src/config';
import type { CsrIterationInput } from '../src/shared/run-types';
import { activitySummary } from '../workflows/csr-iteration';
import { CPU_QUEUE, GPU_QUEUE } from '../workers/task-queues';
import { createTestEnv, repoRoot, tempDir } from './helpers/temporal-harness';

const test = anyTest as TestFn<{ env: TestWorkflowEnvironment }>;

test.before(async (t) => {
  t.context.env = await createTestEnv();
});
test.after.always(async (t) => {
  await t.context.env?.teardown();
});

test('activity summaries read iteration · step · label, a label equal to the step once', (t) => {
  t.is(activitySummary(2, 'generate', 'shard-0'), 'iter 2 · generate · shard-0');
  t.is(activitySummary(1, 'merge', 'merge'), 'iter 1 · merge');
});

test('each compute step of an iteration is scheduled with its summary', async (t) => {
  const { env } = t.context;
  const config = loadConfig(path.join(repoRoot, 'configs', 'toy.yaml'));
  const root = tempDir();
  const input: CsrIterationInput = {
    config,
    configHash: 'h',
    runKey: 'summary-test',
    iteration: 0,
    paths: { artifactRoot: root, baseModel: '/m', clip: '/c', promptsFile: '/p.json', imagesDir: '/i', toyworldDir: '/t' },
    model: '/m',
    parentWorkflowId: 'none',
  };
  const runComputeStep = async (step: { step: string; spec: { out_dir: string } }) => ({
    step: step.step,
    outDir: step.spec.out_dir,
    manifestSha256: null,
    itemsTotal: 1,
    itemsReused: 0,
    itemsComputed: 1,
    stats: {},
    skipped: false,
    attempt: 1,
    wallSeconds: 0,
  });
  const gpu = await Worker.create({ connection: env.nativeConnection, taskQueue: GPU_QUEUE, activities: { runComputeStep } });
  const cpu = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: CPU_QUEUE,
    workflowsPath: require.resolve('../workflows'),
    activities: { readEvaluation: async () => ({ 'toy_chair_dev/CHAIR_I': 20 }) },
  });
  const workflowId = `summary-${Date.now()}`;
  await gpu.runUntil(cpu.runUntil(env.client.workflow.execute('csrIteration', { taskQueue: CPU_QUEUE, workflowId, args: [input] })));
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  const summaries = (history.events ?? [])
    .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'runComputeStep')
    .map((e) => {
      const payload = e.userMetadata?.summary;
      return payload ? defaultPayloadConverter.fromPayload<string>(payload as never) : undefined;
    });
  t.deepEqual(summaries, config.evaluate.benchmarks.map((b) => `iter 0 · evaluate · ${b.name}`));
});
