/**
 * The pages a person opens, rendered by a real browser (Debian's `chromium`, headless): the MLflow run
 * page the CLI links to shows the run in the model-training view with its objective metric and
 * description, and the Temporal event history of an iteration names its compute steps. Skipped where
 * no chromium is installed (`apt-get install chromium`).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Runtime, Worker } from '@temporalio/worker';
import { QuietLogger } from '../workers/quiet-logger';
import { runDescription } from '../src/shared/run-description';
import { loadConfig } from '../src/config';
import type { CsrIterationInput } from '../src/shared/run-types';
import { freePort } from '../app/stack/free-port';
import { mlflowPage } from '../app/cli/output';
import { CPU_QUEUE, GPU_QUEUE } from '../src/shared/task-queues';
import { startMlflowHarness } from './helpers/mlflow-harness';
import { repoRoot, temporalBin, tempDir } from './helpers/temporal-harness';

const test = anyTest as TestFn;
test.before(() => {
  try {
    Runtime.install({ logger: new QuietLogger('WARN') });
  } catch {
    // Installed already.
  }
});
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((file) => fs.existsSync(file));
const browserTest = chromium ? test.serial : test.skip;

/** The page's DOM once its scripts have had `budgetMs` of (virtual) time to fetch and render. */
function renderedText(url: string, budgetMs = 20_000): Promise<string> {
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--window-size=1600,3000', `--virtual-time-budget=${budgetMs}`, '--dump-dom', url];
  return new Promise((resolve, reject) =>
    execFile(chromium!, args, { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (error, stdout) =>
      error
        ? reject(error)
        : resolve(
            stdout
              .replace(/<(style|script)[^>]*>[\s\S]*?<\/\1>/g, ' ')
              .replace(/<[^>]+>/g, ' ')
              .replace(/\s+/g, ' '),
          ),
    ),
  );
}

browserTest("MLflow's run page, as linked by the CLI, shows the objective metric and the run's description", async (t) => {
  const mlflow = await startMlflowHarness();
  try {
    const client = mlflow.client();
    const experiment = await client.getOrCreateExperiment(`ui-${randomUUID()}`);
    // The description the run's parent run gets from trackRunStart.
    const description = runDescription(loadConfig(path.join(repoRoot, 'configs', 'toy.yaml')), 'toy-csr-test');
    const tags = { 'mlflow.note.content': description };
    const run = await client.createRun({ experimentId: experiment.experimentId, name: 'toy-csr run', tags });
    const metrics = [0, 1].map((step) => ({ key: 'eval/toy_chair_dev/CHAIR_I', value: 25 - step, timestamp: Date.now(), step }));
    await client.logWireBatch(run.info.runId, { metrics, params: [], tags: [] });
    const text = await renderedText(mlflowPage(mlflow.url, experiment.experimentId, run.info.runId));
    t.regex(text, /eval\/toy_chair_dev\/CHAIR_I/, text.slice(0, 3000));
    t.true(text.includes('CSR run of toy-csr: 3 iterations'), text.slice(0, 3000));
    t.true(text.includes('Objective: toy_chair_dev/CHAIR_I (lower is better)'), text.slice(0, 3000));
  } finally {
    await mlflow.close();
  }
});

browserTest("Temporal's event history of an iteration names each compute step, not only runComputeStep", async (t) => {
  const uiPort = await freePort();
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalBin },
      ip: '127.0.0.1',
      ui: true,
      uiPort,
      extraArgs: ['--log-level', 'never', '--output', 'none'],
    },
  });
  try {
    const config = loadConfig(path.join(repoRoot, 'configs', 'toy.yaml'));
    const input: CsrIterationInput = {
      config,
      configHash: 'h',
      runKey: 'ui-test',
      iteration: 0,
      paths: { artifactRoot: tempDir(), baseModel: '/m', clip: '/c', promptsFile: '/p.json', imagesDir: '/i', toyworldDir: '/t' },
      model: '/m',
      parentWorkflowId: 'none',
    };
    const result = { manifestSha256: null, itemsTotal: 1, itemsReused: 0, itemsComputed: 1, stats: {}, skipped: false };
    const runComputeStep = async (s: { step: string; spec: { out_dir: string } }) => ({
      ...result,
      attempt: 1,
      wallSeconds: 0,
      step: s.step,
      outDir: s.spec.out_dir,
    });
    const gpu = await Worker.create({ connection: env.nativeConnection, taskQueue: GPU_QUEUE, activities: { runComputeStep } });
    const cpu = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: CPU_QUEUE,
      workflowsPath: require.resolve('../workflows'),
      activities: { readEvaluation: async () => ({ 'toy_chair_dev/CHAIR_I': 20 }) },
    });
    const workflowId = `ui-iteration-${Date.now()}`;
    await gpu.runUntil(cpu.runUntil(env.client.workflow.execute('csrIteration', { taskQueue: CPU_QUEUE, workflowId, args: [input] })));
    const { runId } = await env.client.workflow.getHandle(workflowId).describe();
    const text = await renderedText(`http://127.0.0.1:${uiPort}/namespaces/default/workflows/${workflowId}/${runId}/history`);
    for (const benchmark of config.evaluate.benchmarks) {
      t.true(text.includes(`Activity Type runComputeStep Summary iter 0 · evaluate · ${benchmark.name}`), benchmark.name);
    }
  } finally {
    await env.teardown();
  }
});
