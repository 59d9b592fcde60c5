/**
 * `csr sweep` end to end on a real Temporal dev server, a real MLflow server and real compute on the
 * toy world: a 2-cell grid with 1 seed on the tiny config (1 iteration, 4 prompts, one shard), the
 * children one at a time so the sweep can be stopped after its first cell. Then `csr sweep
 * --resume-from ID --json` runs it again: the finished cell computes nothing (every step skipped by
 * manifest), the stopped one is finished, iteration 0 was computed once for both, the JSON has the
 * documented shape, and MLflow holds the sweep's run with both cells' runs nested under it and the
 * table as CSV and PNG artifacts.
 */
import anyTest, { type TestFn } from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { createLightActivities } from '../../activities/light-activities';
import { csrEnv, type CsrEnv } from '../../src/env';
import { MlflowClient } from '../../src/mlflow';
import { startSweep } from '../../app/cli/sweep/command';
import { planSweep } from '../../app/cli/sweep/plan';
import type { IterationSummary } from '../../src/shared/run-types';
import type { SweepResult, SweepStatus, SweepTable } from '../../src/shared/sweep-types';
import { startWorkers, type RunningWorkers } from '../../workers';
import { startMlflowHarness, type MlflowHarness } from '../helpers/mlflow-harness';
import { createTestEnv, repoRoot, tempDir } from '../helpers/temporal-harness';

interface Context {
  testEnv: TestWorkflowEnvironment;
  mlflow: MlflowHarness;
  env: CsrEnv;
  childEnv: NodeJS.ProcessEnv;
  home: string;
  workers: RunningWorkers;
}

const test = anyTest as TestFn<Context>;
const workflowsPath = require.resolve('../../workflows');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 600_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(500);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The CLI in its own process (async: the in-process workers must keep running meanwhile). */
function cli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'csr.js'), ...args], { cwd: repoRoot, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

test.before(async (t) => {
  const testEnv = await createTestEnv();
  const mlflow = await startMlflowHarness();
  const home = tempDir('csr-sweep-');
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    CSR_HOME: home,
    CSR_TOYWORLD_ROOT: process.env.CSR_TOYWORLD_ROOT ?? path.join(repoRoot, '.csr', 'toyworld'),
    TEMPORAL_ADDRESS: testEnv.connection.options.address,
    MLFLOW_TRACKING_URI: mlflow.url,
    CSR_TORCH_THREADS: '1',
  };
  const env = csrEnv(childEnv);
  const workers = await startWorkers({
    kind: ['cpu', 'gpu'],
    standIns: 1,
    env,
    connection: testEnv.nativeConnection,
    namespace: 'default',
    workflowsPath,
    lightActivities: createLightActivities(env),
    probe: false,
    heartbeatEveryMs: 1000,
    killGraceMs: 3000,
    log: () => undefined,
  });
  t.context = { testEnv, mlflow, env, childEnv, home, workers };
});

test.after.always(async (t) => {
  await t.context.workers?.shutdown().catch(() => undefined);
  await t.context.testEnv?.teardown();
  await t.context.mlflow?.close();
  if (t.context.home && !process.env.CSR_KEEP_TEST_STATE) fs.rmSync(t.context.home, { recursive: true, force: true });
});

test.serial('a 2-cell sweep stopped after its first cell is resumed: the finished cell is reused, the table and nested runs land in MLflow', async (t) => {
  const { client } = t.context.testEnv;
  // The tiny config, smaller still: 4 prompts on one shard. dpo.beta leaves generation unchanged, so
  // the two cells differ only where DPO does, and the sweep stays a few minutes on 2 cores.
  const config = parseYaml(fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'tiny-toy.yaml'), 'utf8')) as Record<string, any>;
  config.prompts.limit = 4;
  config.workers.gpu_shards = 1;
  const configFile = path.join(t.context.home, 'sweep-tiny.yaml');
  fs.writeFileSync(configFile, toYaml(config));
  const input = planSweep({ config: configFile, grid: ['dpo.beta=0.1,0.5'], seeds: 1, maxParallel: 1 });
  t.is(input.runs.length, 2);
  t.is(input.baselines.length, 1, 'both cells share iteration 0');

  // First attempt: let cell 0 finish, then end the sweep for good (its running child goes with it).
  const firstId = await startSweep(client, input);
  const first = client.workflow.getHandle(firstId);
  await waitFor('cell 0 to finish', async () => {
    const status = await first.query<SweepStatus>('sweepStatus').catch(() => undefined);
    return status?.runs[0]?.state === 'done' ? status : undefined;
  });
  await first.terminate('test: the sweep failed for good after its first cell');
  const firstCell = (await client.workflow.getHandle(`${firstId}/c0-s0`).result()) as IterationSummary[];
  const iteration0 = firstCell[0]!.steps.filter((step) => step.step === 'evaluate');
  t.is(iteration0.length, 2);
  t.true(
    iteration0.every((step) => step.state === 'skipped' && step.itemsComputed === 0),
    `iteration 0 came from the sweep's shared baseline: ${JSON.stringify(iteration0)}`,
  );
  t.true(firstCell[1]!.steps.some((step) => (step.itemsComputed ?? 0) > 0), 'cell 0 computed its iteration 1');

  // Resume through the CLI, as a person would; --json prints the table alone on stdout.
  const resumed = await cli(t.context.childEnv, 'sweep', '--resume-from', firstId, '--json');
  t.is(resumed.code, 0, resumed.stderr);
  const table = JSON.parse(resumed.stdout) as SweepTable;
  t.deepEqual(Object.keys(table), ['cells']);
  t.deepEqual(
    table.cells.map((cell) => cell.params),
    [{ 'dpo.beta': 0.1 }, { 'dpo.beta': 0.5 }],
  );
  for (const cell of table.cells) {
    t.deepEqual(Object.keys(cell), ['params', 'seeds', 'metrics']);
    t.deepEqual(cell.seeds, [0]);
    const chair = cell.metrics['toy_chair/CHAIR_I'];
    t.truthy(chair, JSON.stringify(Object.keys(cell.metrics)));
    t.deepEqual(Object.keys(chair!), ['mean', 'sd', 'n', 'by_iteration']);
    t.is(chair!.n, 1);
    t.is(chair!.sd, 0);
    t.is(chair!.by_iteration.length, 2, 'iterations 0 and 1');
    t.is(chair!.by_iteration[1], chair!.mean, 'the mean is taken at the last iteration');
  }
  // Both cells start from the same model: iteration 0 is the same number in both.
  t.is(table.cells[0]!.metrics['toy_chair/CHAIR_I']!.by_iteration[0], table.cells[1]!.metrics['toy_chair/CHAIR_I']!.by_iteration[0]);

  const resumedId = /started (\S+), reusing/.exec(resumed.stderr)?.[1];
  t.truthy(resumedId, resumed.stderr);
  const result = (await client.workflow.getHandle(resumedId!).result()) as SweepResult;
  const [cell0, cell1] = result.runs;
  t.is(cell0?.state, 'done');
  t.deepEqual(cell0?.computedByIteration, [0, 0], 'the finished cell computed nothing');
  t.is(cell1?.computedByIteration?.[0], 0, 'iteration 0 of the stopped cell came from the shared baseline');
  t.true((cell1?.computedByIteration?.[1] ?? 0) > 0, 'the stopped cell computed what it had not finished');
  t.is(result.objective, 'toy_chair/CHAIR_I');
  t.true(result.best === 0 || result.best === 1);

  // MLflow: the sweep's run (found by its key), both cells' runs nested under it, the table as artifacts.
  const mlflow = new MlflowClient({ trackingUri: t.context.mlflow.url });
  const experiment = await mlflow.getExperimentByName(input.experimentName);
  t.truthy(experiment);
  const runs = await mlflow.searchRuns({ experimentIds: [experiment!.experimentId] });
  const sweepRuns = runs.filter((run) => run.data.tags['csr.sweep_key'] === input.sweepKey && run.data.tags['csr.kind'] === 'sweep');
  t.is(sweepRuns.length, 1, 'one sweep run, found again by the resume');
  const parent = sweepRuns[0]!;
  t.is(parent.info.runId, result.mlflowParentRunId ?? 'no sweep run id in the result');
  t.is(parent.info.status, 'FINISHED');
  t.is(parent.data.params['grid.dpo.beta'], '[0.1,0.5]');
  const nested = runs.filter((run) => run.data.tags['mlflow.parentRunId'] === parent.info.runId);
  t.deepEqual(
    nested.map((run) => run.data.tags['csr.run_key']).sort(),
    input.runs.map((run) => run.input.runKey).sort(),
    'one nested run per cell and seed, the same ones before and after the resume',
  );
  const artifacts = (await mlflow.listArtifacts(parent.info.runId, 'sweep')).map((a) => a.path);
  for (const name of ['sweep/table.csv', 'sweep/table.json', 'sweep/table.png']) t.true(artifacts.includes(name), JSON.stringify(artifacts));
  const csv = (await mlflow.downloadArtifact(parent.info.runId, 'sweep/table.csv')).toString('utf8').trimEnd().split('\n');
  t.is(csv[0], 'cell,dpo.beta,seeds,metric,mean,sd,n,iter_0,iter_1,best');
  const chairRows = csv.filter((line) => line.includes(',toy_chair/CHAIR_I,'));
  t.is(chairRows.length, 2);
  t.is(chairRows.filter((line) => line.endsWith(',1')).length, 1, 'the best cell is marked once');

  // Determinism: the sweep's recorded history replays.
  const recorded = await client.workflow.getHandle(resumedId!).fetchHistory();
  await t.notThrowsAsync(Worker.runReplayHistory({ workflowsPath }, recorded, resumedId!));
});
