/**
 * A run is filterable in the Temporal UI by its config name, last iteration and objective value: the
 * server has the search attributes registered (as the embedded stack does) and a real `csrRun`, with
 * stand-in activities, upserts them; a run started without the flag (recorded histories) upserts nothing.
 */
import * as path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { ensureSearchAttributes } from '../src/client/search-attributes';
import { loadConfig } from '../src/config';
import { CSR_CONFIG, CSR_ITERATION, CSR_OBJECTIVE, searchAttributeFlags } from '../src/shared/search-attributes';
import { CPU_QUEUE, GPU_QUEUE } from '../src/shared/task-queues';
import { createTestEnv, eventually, repoRoot, tempDir } from './helpers/temporal-harness';

const test = anyTest as TestFn<{ env: TestWorkflowEnvironment }>;

test.before(async (t) => {
  t.context.env = await createTestEnv();
});
test.after.always(async (t) => {
  await t.context.env?.teardown();
});

test('the dev server is started with the attributes registered', (t) => {
  t.deepEqual(searchAttributeFlags(), [
    '--search-attribute',
    'CsrConfig=Keyword',
    '--search-attribute',
    'CsrIteration=Int',
    '--search-attribute',
    'CsrObjective=Double',
  ]);
});

/** Run `csrRun` for iteration 0 only; returns its workflow id. */
async function runIteration0(env: TestWorkflowEnvironment, searchAttributes: boolean): Promise<string> {
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
      readEvaluation: async () => ({ 'toy_chair_dev/CHAIR_I': 0.25 }),
    },
  });
  const workflowId = `search-attributes-${searchAttributes}-${Date.now()}`;
  const input = { config, configHash: 'h', runKey: workflowId, nextIteration: 0, history: [], overrides: { iterations: 0 }, searchAttributes };
  await gpu.runUntil(cpu.runUntil(env.client.workflow.execute('csrRun', { taskQueue: CPU_QUEUE, workflowId, args: [input] })));
  return workflowId;
}

test.serial('a run upserts its config name, last iteration and objective value; the list filters by them', async (t) => {
  const { env } = t.context;
  t.true(await ensureSearchAttributes(env.client, (line) => t.fail(line)), 'registered on the test server');
  const workflowId = await runIteration0(env, true);
  const attributes = (await env.client.workflow.getHandle(workflowId).describe()).typedSearchAttributes;
  t.is(attributes.get(CSR_CONFIG), 'toy-csr');
  t.is(attributes.get(CSR_ITERATION), 0);
  t.is(attributes.get(CSR_OBJECTIVE), 0.25);
  const found = await eventually('the filtered list', async () => {
    const ids: string[] = [];
    for await (const w of env.client.workflow.list({ query: `CsrConfig = 'toy-csr' AND CsrObjective < 0.3 AND CsrIteration = 0` })) ids.push(w.workflowId);
    return ids.includes(workflowId) ? ids : undefined;
  });
  t.true(found.includes(workflowId));
});

test.serial('a run started without the flag (as recorded histories were) upserts nothing', async (t) => {
  const { env } = t.context;
  const workflowId = await runIteration0(env, false);
  const attributes = (await env.client.workflow.getHandle(workflowId).describe()).typedSearchAttributes;
  t.is(attributes.get(CSR_CONFIG), undefined);
  t.is(attributes.get(CSR_OBJECTIVE), undefined);
});
