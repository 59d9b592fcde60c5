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
import { iterationSummaryText } from '../workflows/csr-run';
import { CPU_QUEUE, GPU_QUEUE } from '../src/shared/task-queues';
import { createTestEnv, repoRoot, tempDir } from './helpers/temporal-harness';

const test = anyTest as TestFn<{ env: TestWorkflowEnvironment }>;

test.before(async (t) => {
  t.context.env = await createTestEnv();
});
test.after.always(async (t) => {
  await t.context.env?.teardown();
});

test('iteration workflows are listed as "iteration N of M · config"', (t) => {
  t.is(iterationSummaryText(0, 3, 'toy-csr'), 'iteration 0 (starting model) · toy-csr');
  t.is(iterationSummaryText(2, 3, 'toy-csr'), 'iteration 2 of 3 · toy-csr');
});

test('activity summaries read iteration · step · label, a label equal to the step once', (t) => {
  t.is(activitySummary(2, 'generate', 'shard-0'), 'iter 2 · generate · shard-0');
  t.is(activitySummary(1, 'merge', 'merge'), 'iter 1 · merge');
});

test.serial('each compute step of an iteration is scheduled with its summary', async (t) => {
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

test.serial('a run starts its iteration workflow with a summary the Temporal UI lists', async (t) => {
  const { env } = t.context;
  const config = loadConfig(path.join(repoRoot, 'configs', 'toy.yaml'));
  const paths = { artifactRoot: tempDir(), baseModel: '/m', clip: '/c', promptsFile: '/p.json', imagesDir: '/i', toyworldDir: '/t' };
  const stepResult = { manifestSha256: null, itemsTotal: 1, itemsReused: 0, itemsComputed: 1, stats: {}, skipped: false, attempt: 1, wallSeconds: 0 };
  const gpu = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: GPU_QUEUE,
    activities: { runComputeStep: async (s: { step: string; spec: { out_dir: string } }) => ({ ...stepResult, step: s.step, outDir: s.spec.out_dir }) },
  });
  const cpu = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: CPU_QUEUE,
    workflowsPath: require.resolve('../workflows'),
    activities: {
      prepareRun: async () => ({ toyworldDir: '/t' }),
      resolveRunPaths: async () => paths,
      trackRunStart: async () => undefined,
      readEvaluation: async () => ({ 'toy_chair_dev/CHAIR_I': 20 }),
    },
  });
  const workflowId = `run-summary-${Date.now()}`;
  // Iteration 0 only (overrides.iterations = 0): the run starts one child and ends.
  const input = { config, configHash: 'h', runKey: workflowId, nextIteration: 0, history: [], overrides: { iterations: 0 } };
  await gpu.runUntil(cpu.runUntil(env.client.workflow.execute('csrRun', { taskQueue: CPU_QUEUE, workflowId, args: [input] })));
  const child = await env.client.workflow.getHandle(`${workflowId}/iter-0`).describe();
  t.is(await child.staticSummary(), 'iteration 0 (starting model) · toy-csr');
});
