/**
 * The CSR workflows end to end on a real Temporal dev server, a real MLflow server and real compute
 * on the toy world (test/fixtures/tiny-toy.yaml: one iteration of 8 prompts, 32 where a test must
 * catch a step half-way). Covered: a run that fails for good and is resumed without redoing finished
 * steps, MLflow logging, replay of the recorded histories, a GPU worker killed mid-generate,
 * cancellation, and pause/resume.
 */
import anyTest, { type TestFn } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { createLightActivities } from '../../activities/light-activities';
import { loadConfig } from '../../src/config';
import { csrEnv, type CsrEnv } from '../../src/env';
import { MlflowClient } from '../../src/mlflow';
import { configHash } from '../../app/cli/run-command';
import { latestRunInput, resumePlan } from '../../app/cli/resume-command';
import { pendingActivities } from '../../src/client/progress';
import type { CsrRunInput, IterationSummary, RunStatus } from '../../src/shared/run-types';
import { startWorkers, type RunningWorkers } from '../../workers';
import { CPU_QUEUE } from '../../src/shared/task-queues';
import { startMlflowHarness, type MlflowHarness } from '../helpers/mlflow-harness';
import { createTestEnv, repoRoot, tempDir } from '../helpers/temporal-harness';

interface Context {
  testEnv: TestWorkflowEnvironment;
  mlflow: MlflowHarness;
  env: CsrEnv;
  childEnv: NodeJS.ProcessEnv;
  cpuWorkers?: RunningWorkers;
}

const test = anyTest as TestFn<Context>;
const workflowsPath = require.resolve('../../workflows');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function tinyInput(runKey: string, adjust: (config: CsrRunInput['config']) => void = () => undefined): CsrRunInput {
  const config = loadConfig(path.join(repoRoot, 'test', 'fixtures', 'tiny-toy.yaml'));
  adjust(config);
  return { config, configHash: configHash(config), runKey, nextIteration: 0, history: [] };
}

function lineCount(file: string): number {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter((line) => line.trim()).length;
  } catch {
    return 0;
  }
}

/**
 * A generate shard of the run's first iteration that has written some of its prompts and not finished.
 * Read from the shard's own files, not from heartbeats: on the toy world a shard takes seconds, only a
 * few heartbeat intervals.
 */
function shardHalfWay(env: CsrEnv, runKey: string, shards: number): string | undefined {
  for (let index = 0; index < shards; index++) {
    const dir = path.join(env.artifactsDir, runKey, 'iter-01', 'generate', `shard-${index}`);
    const done = lineCount(path.join(dir, 'trees.jsonl'));
    if (done >= 1 && !fs.existsSync(path.join(dir, 'manifest.json'))) return `shard-${index}`;
  }
  return undefined;
}

/** A live `python -m csr_compute` process whose spec lies under `dir` (Linux: read from /proc). */
function computeProcessUnder(dir: string): { pid: number; outDir: string } | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    const spec = args[args.indexOf('--spec') + 1];
    if (args.includes('csr_compute') && spec?.startsWith(dir + path.sep)) return { pid: Number(entry), outDir: path.dirname(spec) };
  }
  return undefined;
}

/** In-process workers: the CPU worker (workflows, light activities) and optionally one GPU stand-in. */
function inProcessWorkers(t: { context: Context }, standIns: number): Promise<RunningWorkers> {
  return startWorkers({
    kind: standIns > 0 ? ['cpu', 'gpu'] : ['cpu'],
    standIns,
    env: t.context.env,
    connection: t.context.testEnv.nativeConnection,
    namespace: 'default',
    workflowsPath,
    lightActivities: createLightActivities(t.context.env),
    probe: false,
    heartbeatEveryMs: 1000,
    killGraceMs: 3000,
    log: () => undefined,
  });
}

/** A GPU stand-in worker in its own process, which a test can kill like a crashed machine. */
function workerProcess(t: { context: Context }): ChildProcess {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'csr.js'), 'worker', '--stand-ins', '1'], {
    cwd: repoRoot,
    env: t.context.childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 600_000, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function runStatus(client: Client, id: string): Promise<RunStatus | undefined> {
  try {
    return await client.workflow.getHandle(id).query<RunStatus>('runStatus');
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test.before(async (t) => {
  const testEnv = await createTestEnv();
  const mlflow = await startMlflowHarness();
  const home = tempDir('csr-workflows-');
  const toyworldRoot = process.env.CSR_TOYWORLD_ROOT ?? path.join(repoRoot, '.csr', 'toyworld');
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    CSR_HOME: home,
    CSR_TOYWORLD_ROOT: toyworldRoot,
    TEMPORAL_ADDRESS: testEnv.connection.options.address,
    MLFLOW_TRACKING_URI: mlflow.url,
    CSR_TORCH_THREADS: '1',
  };
  t.context = { testEnv, mlflow, env: csrEnv(childEnv), childEnv };
});

test.after.always(async (t) => {
  await t.context.cpuWorkers?.shutdown().catch(() => undefined);
  await t.context.testEnv?.teardown();
  await t.context.mlflow?.close();
});

test.serial('a run that fails for good is resumed: finished steps are reused, the rest computed, all logged to MLflow', async (t) => {
  const { client } = t.context.testEnv;
  const workers = await inProcessWorkers(t, 1);
  try {
    const input = tinyInput(`tiny-resume-${Date.now()}`);
    const first = await client.workflow.start('csrRun', { taskQueue: CPU_QUEUE, workflowId: input.runKey, args: [input] });
    // Let iteration 1 get past generate, then end the run for good, as a crash of the orchestrator would.
    // Watched on disk, not by polling the step name: with warm compute processes reward can come and go
    // between two queries. Both generate shards done and DPO not yet: end it there.
    const iteration1Dir = path.join(t.context.env.artifactsDir, input.runKey, 'iter-01');
    const done = (step: string) => fs.existsSync(path.join(iteration1Dir, step)) ? fs.readdirSync(path.join(iteration1Dir, step), { recursive: true }).filter((f) => String(f).endsWith('manifest.json')).length : 0;
    await waitFor('iteration 1 past generate', async () => (done('generate') >= 2 && done('dpo') === 0 ? true : undefined), 600_000, 50);
    await first.terminate('test: the run failed for good');

    const old = await latestRunInput(client, first.workflowId);
    t.is(old.nextIteration, 1, 'iteration 0 (base evaluation) had finished');
    const plan = await resumePlan(old);
    const generate = plan.filter((row) => row.iteration === 1 && row.step === 'generate');
    t.is(generate.length, 2);
    t.true(generate.every((row) => row.action === 'reuse'), JSON.stringify(generate));
    t.true(plan.some((row) => row.step === 'dpo' && row.action === 'run'));

    const resumedId = `${old.runKey}-resume`;
    const resumed = await client.workflow.start('csrRun', {
      taskQueue: CPU_QUEUE,
      workflowId: resumedId,
      args: [{ ...old, resumedFrom: first.workflowId }],
    });
    const history = (await resumed.result()) as IterationSummary[];
    t.deepEqual(
      history.map((h) => h.iteration),
      [0, 1],
    );
    const iteration1 = history[1] as IterationSummary;
    const generated = iteration1.steps.filter((s) => s.step === 'generate');
    t.true(generated.every((s) => s.state === 'skipped' && s.itemsReused === s.itemsTotal), JSON.stringify(generated));
    const dpo = iteration1.steps.find((s) => s.step === 'dpo');
    t.is(dpo?.state, 'done');
    t.true(typeof iteration1.metrics['toy_chair/CHAIR_I'] === 'number', JSON.stringify(iteration1.metrics));
    t.true(iteration1.stats['curate/pairs'] !== undefined && iteration1.stats['curate/pairs'] > 0, JSON.stringify(iteration1.stats));

    // MLflow: one parent run with eval metrics at steps 0 and 1, an iteration child run nested under it.
    const mlflow = new MlflowClient({ trackingUri: t.context.mlflow.url });
    const experiment = await mlflow.getExperimentByName('tiny-toy');
    t.truthy(experiment);
    const runs = await mlflow.searchRuns({ experimentIds: [experiment!.experimentId] });
    const parent = runs.find((r) => r.data.tags['csr.run_key'] === old.runKey && !r.data.tags['mlflow.parentRunId']);
    t.truthy(parent, 'parent run found by its run key');
    const children = runs.filter((r) => r.data.tags['mlflow.parentRunId'] === parent!.info.runId);
    t.true(children.length >= 2, `iteration child runs: ${children.length}`);
    const chair = await mlflow.getMetricHistory(parent!.info.runId, 'eval/toy_chair/CHAIR_I');
    t.deepEqual([...new Set(chair.map((m) => m.step))].sort(), [0, 1]);
    t.is(parent!.data.tags['csr.workflow_id'], first.workflowId);
    // The run's config as MLflow params, one per leaf, with the values the run used.
    const params = parent!.data.params ?? {};
    t.is(params['generate.num_beams'], String(old.config.generate.num_beams), JSON.stringify(params));
    t.is(params['dpo.beta'], String(old.config.dpo.beta));
    t.is(params.config_hash, old.configHash);
    const artifacts = await mlflow.listArtifacts(parent!.info.runId, 'plots');
    t.true(artifacts.some((a) => a.path.endsWith('eval_metrics.png')), JSON.stringify(artifacts));

    // Determinism: every recorded history (the run chain and its iteration children) replays cleanly.
    const histories = [resumedId, `${resumedId}/iter-1`];
    for (const id of histories) {
      const recorded = await client.workflow.getHandle(id).fetchHistory();
      await t.notThrowsAsync(Worker.runReplayHistory({ workflowsPath }, recorded, id), `replay of ${id}`);
    }
  } finally {
    await workers.shutdown();
  }
});

test.serial('a GPU worker killed mid-generate: a retry elsewhere finishes the run, reusing finished prompts', async (t) => {
  const { client } = t.context.testEnv;
  const cpu = await inProcessWorkers(t, 0);
  let gpu = workerProcess(t);
  try {
    // 16 prompts per shard, one at a time: the shard runs long enough to be killed half-way.
    const input = tinyInput(`tiny-kill-${Date.now()}`, (config) => {
      config.prompts.limit = 32;
    });
    const handle = await client.workflow.start('csrRun', { taskQueue: CPU_QUEUE, workflowId: input.runKey, args: [input] });
    const shards = input.config.workers.gpu_shards;
    const victimLabel = await waitFor('generate to be half-way', async () => shardHalfWay(t.context.env, input.runKey, shards), 600_000, 100);
    gpu.kill('SIGKILL');
    await new Promise((resolve) => gpu.once('exit', resolve));
    gpu = workerProcess(t);
    const history = (await handle.result()) as IterationSummary[];
    const shard = history[1]?.steps.find((s) => s.step === 'generate' && s.label === victimLabel);
    t.truthy(shard, JSON.stringify(history[1]?.steps));
    t.true((shard?.itemsReused ?? 0) > 0, `the retried shard reused finished prompts: ${JSON.stringify(shard)}`);
    t.is(shard?.itemsTotal, (shard?.itemsReused ?? 0) + (shard?.itemsComputed ?? 0));
  } finally {
    gpu.kill('SIGTERM');
    await cpu.shutdown();
  }
});

test.serial('cancelling a run kills its compute processes; pause holds the next step until unpaused', async (t) => {
  const { client } = t.context.testEnv;
  const workers = await inProcessWorkers(t, 1);
  try {
    const input = tinyInput(`tiny-cancel-${Date.now()}`, (config) => {
      config.prompts.limit = 128; // a generate shard long enough to be cancelled half-way (steps start warm)
    });
    const handle: WorkflowHandle = await client.workflow.start('csrRun', {
      taskQueue: CPU_QUEUE,
      workflowId: input.runKey,
      args: [input],
    });
    // Pause during iteration 0's evaluation: the running step finishes, the next waits.
    const status = await waitFor('iteration 0', async () => {
      const s = await runStatus(client, handle.workflowId);
      return s?.currentChildId ? s : undefined;
    });
    await handle.signal('pause');
    await client.workflow.getHandle(status.currentChildId!).signal('pause');
    const paused = await waitFor('the pause to take hold', async () => {
      const s = await client.workflow
        .getHandle(status.currentChildId!)
        .query<{ currentStep?: string; paused: boolean }>('iterationStatus')
        .catch(() => undefined);
      return s?.currentStep?.startsWith('paused before') ? s : undefined;
    });
    t.true(paused.paused);
    await sleep(3000);
    const stillPaused = await pendingActivities(client, status.currentChildId!);
    t.deepEqual(stillPaused, [], 'no step starts while paused');
    await handle.signal('resume');
    await client.workflow.getHandle(status.currentChildId!).signal('resume');

    // Cancel while a generate shard runs; its whole process group must be gone afterwards.
    const generateDir = path.join(t.context.env.artifactsDir, input.runKey, 'iter-01', 'generate');
    const running = await waitFor('a running generate step', async () => computeProcessUnder(generateDir), 600_000, 100);
    t.true(pidAlive(running.pid));
    await handle.cancel();
    await t.throwsAsync(handle.result());
    await waitFor('the compute process to be gone', async () => (pidAlive(running.pid) ? undefined : true), 30_000);
    t.false(pidAlive(running.pid));
    t.false(fs.existsSync(path.join(running.outDir, 'manifest.json')), 'the step was stopped, not left to finish');
  } finally {
    await workers.shutdown();
  }
});

test.serial('every activity input and output of a run stays under 64 KB', async (t) => {
  const { client } = t.context.testEnv;
  const runs = client.workflow.list({ query: "WorkflowType = 'csrRun' OR WorkflowType = 'csrIteration'" }).intoHistories();
  let checked = 0;
  for await (const item of runs) {
    const history = (item as { history: temporal.api.history.v1.IHistory }).history;
    for (const event of history.events ?? []) {
      const scheduled = event.activityTaskScheduledEventAttributes?.input?.payloads ?? [];
      const completed = event.activityTaskCompletedEventAttributes?.result?.payloads ?? [];
      for (const payload of [...scheduled, ...completed]) {
        const size = payload.data?.length ?? 0;
        t.true(size < 64 * 1024, `payload of ${size} bytes in ${event.eventType}`);
        checked++;
      }
    }
  }
  t.true(checked > 20, `checked ${checked} payloads`);
});
