/**
 * Faults end to end: one small CSR run on the toy world, on the embedded stack started by its own
 * code (`stackUp`, what `csr up` runs) on free ports with a temporary CSR_HOME, with real compute.
 * While it runs, the GPU worker is SIGKILLed together with its compute child (every process group
 * under it) during evaluate (iteration 0), generate, reward and DPO (iteration 1) and started again by
 * `stackUp`; during iteration 1's evaluate the Temporal dev server is SIGKILLed and started again.
 * The run must complete with no item computed twice, every artifact intact, the steps finished
 * before a kill left as they were, and no duplicate point in any MLflow metric history. The recovery
 * figures (seconds from a kill until the step runs again, items redone) are printed.
 *
 * Run with `npm run test:faults:e2e` (minutes; not part of `npm test`).
 */
import anyTest, { type TestFn } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig, type CsrConfig } from '../../src/config';
import { MlflowClient } from '../../src/mlflow';
import type { IterationSummary } from '../../src/shared/run-types';
import { connectClient } from '../../src/client/temporal';
import { newRunInput, startRun } from '../../app/cli/run-command';
import {
  type FaultStack,
  ITEM_FILES,
  attemptsStarted,
  checkArtifacts,
  completeLines,
  dpoStepsLogged,
  gpuWorkerPid,
  killTree,
  readManifest,
  repoRoot,
  sha256,
  startFaultStack,
  stepFolders,
  temporalServerPid,
  waitFor,
} from '../helpers/fault-stack';

interface Context {
  stack: FaultStack;
}

const test = anyTest as TestFn<Context>;
const fixture = path.join(repoRoot, 'test', 'fixtures', 'tiny-toy.yaml');

/** The tiny-toy run made just long enough in each step to be caught half-way. */
function faultConfig(): CsrConfig {
  const config = loadConfig(fixture);
  config.name = 'faults-e2e';
  config.prompts.limit = 12; // 12 trees one at a time, ~12 DPO pairs = 6 optimizer steps
  config.workers.gpu_shards = 1; // one shard per step: one process start per step on a loaded machine
  config.dpo.checkpoint_every = 2;
  config.evaluate.batch_size = 2; // answers land two at a time
  config.evaluate.benchmarks = [
    { ...config.evaluate.benchmarks[0]!, limit: 8 },
    { ...config.evaluate.benchmarks[1]!, limit: 4 },
  ];
  // A killed worker's step is retried once its heartbeat is missed: this bounds the recovery time.
  config.activities.heartbeat_timeout = '10s';
  config.activities.heartbeat_every = '1s';
  return config;
}

/** What one fault did and what it cost. */
interface FaultRecord {
  fault: 'worker SIGKILL' | 'Temporal SIGKILL';
  step: string;
  stepDir: string;
  /** Items (complete JSONL records, or DPO optimizer steps logged) on disk at the kill. */
  itemsAtKill: number;
  /** Kill -> stack up again (worker or server started). */
  upSeconds: number;
  /** Kill -> the step running again (a new attempt started, or the run answering and the step moving). */
  recoverySeconds: number;
  /** Filled in once the run ends. */
  itemsRedone?: number;
  attempts?: number;
  manifestsBefore: Map<string, string>;
}

/** Items of a step folder on disk now: complete per-item records, or DPO's optimizer steps. */
function itemsOnDisk(dir: string, step: string): number {
  return step === 'dpo' ? Math.max(0, ...dpoStepsLogged(dir)) : completeLines(path.join(dir, ITEM_FILES[step]?.file ?? ''));
}

/**
 * The first folder of `step` in `iteration` that has written `minItems` items and has no manifest yet;
 * undefined while none has; an error once every folder of the step has finished (the step was too
 * short to be caught half-way: make the config's step longer).
 */
function halfWay(runDir: string, iteration: number, step: string, minItems: number, folders: number): { dir: string; items: number } | undefined {
  const base = path.join(runDir, `iter-${String(iteration).padStart(2, '0')}`, step);
  const candidates = step === 'dpo' ? [base] : fs.existsSync(base) ? fs.readdirSync(base).map((d) => path.join(base, d)) : [];
  let finished = 0;
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'manifest.json'))) {
      finished++;
      continue;
    }
    const items = itemsOnDisk(dir, step);
    if (items >= minItems) return { dir, items };
  }
  if (finished >= folders) throw new Error(`every ${step} of iteration ${iteration} finished before ${minItems} items were seen half-way`);
  return undefined;
}

/** Every finished step folder of the run, with the hash of its manifest. */
function manifests(runDir: string): Map<string, string> {
  return new Map(stepFolders(runDir).map((dir) => [dir, sha256(path.join(dir, 'manifest.json'))]));
}

const seconds = (fromMs: number) => Math.round((Date.now() - fromMs) / 100) / 10;

test.before(async (t) => {
  t.context.stack = await startFaultStack();
});

test.after.always(async (t) => {
  await t.context.stack?.close();
});

test.serial('worker and Temporal server SIGKILLed mid-step: the run completes, nothing computed twice or corrupted, no duplicate MLflow point', async (t) => {
  const { stack } = t.context;
  const config = faultConfig();
  const input = newRunInput(config, fixture);
  const runDir = path.join(stack.env.artifactsDir, input.runKey);
  const client = await connectClient(stack.env);
  const workflowId = await startRun(input);
  const handle = client.workflow.getHandle(workflowId);
  const faults: FaultRecord[] = [];

  const killWorker = async (iteration: number, step: string, minItems: number) => {
    const folders = step === 'evaluate' ? config.evaluate.benchmarks.length : step === 'dpo' ? 1 : config.workers.gpu_shards;
    const caught = await waitFor(`${step} of iteration ${iteration} half-way`, () => halfWay(runDir, iteration, step, minItems, folders), 900_000, 50);
    const manifestsBefore = manifests(runDir);
    const before = attemptsStarted(caught.dir, step);
    const killedAt = Date.now();
    await killTree(gpuWorkerPid(stack.env));
    // Read after the kill: the items that were on disk when the step died.
    const itemsAtKill = itemsOnDisk(caught.dir, step);
    t.false(fs.existsSync(path.join(caught.dir, 'manifest.json')), `${step} finished before the kill landed; make it longer`);
    await stack.up();
    const upSeconds = seconds(killedAt);
    await waitFor(`${step} to run again`, () => (attemptsStarted(caught.dir, step) > before ? true : undefined), 300_000);
    faults.push({ fault: 'worker SIGKILL', step, stepDir: caught.dir, itemsAtKill, upSeconds, recoverySeconds: seconds(killedAt), manifestsBefore });
  };

  await killWorker(0, 'evaluate', 1);
  await killWorker(1, 'generate', 1);
  await killWorker(1, 'reward', 1);
  await killWorker(1, 'dpo', config.dpo.checkpoint_every + 1); // past the first checkpoint

  // The Temporal server, mid-evaluate: the worker and its step go on; the run picks up from its history.
  const caught = await waitFor('evaluate of iteration 1 half-way', () => halfWay(runDir, 1, 'evaluate', 1, config.evaluate.benchmarks.length), 900_000, 50);
  const manifestsBefore = manifests(runDir);
  const itemsAtKill = completeLines(path.join(caught.dir, 'answers.jsonl'));
  const killedAt = Date.now();
  await killTree(temporalServerPid(stack.env));
  // Right after the kill `csr up` can still find the port held (seen once: the workers' reconnecting
  // sockets): it says so and stops, and a user runs it again; so does this test, for up to 30 s.
  for (let tries = 1; ; tries++) {
    try {
      await stack.up();
      break;
    } catch (error) {
      if (tries >= 30 || !/is taken/.test((error as Error).message)) throw error;
      t.log(`csr up after the Temporal kill, try ${tries}: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  const upSeconds = seconds(killedAt);
  await waitFor(
    'the run to answer and the step to move',
    async () => {
      const answering = await handle.query('runStatus').then(
        () => true,
        () => false,
      );
      const moved = completeLines(path.join(caught.dir, 'answers.jsonl')) > itemsAtKill || fs.existsSync(path.join(caught.dir, 'manifest.json'));
      return answering && moved ? true : undefined;
    },
    300_000,
  );
  faults.push({ fault: 'Temporal SIGKILL', step: 'evaluate', stepDir: caught.dir, itemsAtKill, upSeconds, recoverySeconds: seconds(killedAt), manifestsBefore });

  const history = (await handle.result()) as IterationSummary[];
  t.deepEqual(
    history.map((h) => h.iteration),
    [0, 1],
    'the run completed both iterations',
  );

  // Every step's artifacts are whole, and every per-item file holds each item once.
  checkArtifacts(t, runDir, (dir, manifest, where) => {
    const killed = faults.find((f) => f.stepDir === dir);
    // Once, or not at all (a step reused without starting Python, like the toy world's).
    if (!killed) t.true(attemptsStarted(dir, manifest.step) <= 1, `${where} ran once`);
  });

  // Each killed step kept what it had finished.
  for (const fault of faults) {
    const manifest = readManifest(fault.stepDir)!;
    fault.attempts = attemptsStarted(fault.stepDir, fault.step);
    if (fault.step === 'dpo') {
      // Optimizer steps: at most one checkpoint interval is trained again.
      fault.itemsRedone = fault.itemsAtKill - manifest.items_reused;
      t.true(manifest.items_reused >= config.dpo.checkpoint_every, `DPO resumed from a checkpoint: ${JSON.stringify(manifest)}`);
      t.true(fault.itemsRedone <= config.dpo.checkpoint_every, `DPO redid ${fault.itemsRedone} optimizer steps`);
    } else if (fault.fault === 'worker SIGKILL') {
      fault.itemsRedone = Math.max(0, fault.itemsAtKill - manifest.items_reused);
      t.true(manifest.items_reused >= fault.itemsAtKill, `${fault.step}: reused ${manifest.items_reused} of the ${fault.itemsAtKill} on disk at the kill`);
    } else {
      // The step outlived the server: its first attempt finished it, or a retry reused what was on disk.
      fault.itemsRedone = fault.attempts === 1 ? 0 : Math.max(0, fault.itemsAtKill - manifest.items_reused);
      t.is(fault.itemsRedone, 0, `${fault.step} after the server restart: ${JSON.stringify(manifest)}`);
    }
    // The steps that had finished before the kill were reused as they were, not written again.
    for (const [dir, hash] of fault.manifestsBefore) {
      t.is(sha256(path.join(dir, 'manifest.json')), hash, `${path.relative(runDir, dir)} unchanged after the ${fault.fault} in ${fault.step}`);
    }
  }
  const summaries = history.flatMap((h) => h.steps.map((s) => ({ iteration: h.iteration, ...s })));
  t.true(summaries.every((s) => s.state === 'done' || s.state === 'skipped'), JSON.stringify(summaries));

  // MLflow: no metric history of the run (parent or iteration runs) holds a step twice.
  const mlflow = new MlflowClient({ trackingUri: stack.env.mlflowUri });
  const experiment = await mlflow.getExperimentByName(config.name);
  t.truthy(experiment, 'the experiment exists');
  const runs = await mlflow.searchRuns({ experimentIds: [experiment!.experimentId] });
  let points = 0;
  let histories = 0;
  for (const run of runs) {
    for (const key of Object.keys(run.data.metrics ?? {})) {
      const metric = await mlflow.getMetricHistory(run.info.runId, key);
      histories++;
      points += metric.length;
      const steps = metric.map((m) => m.step);
      const twice = steps.filter((step, i) => steps.indexOf(step) !== i);
      t.deepEqual(twice, [], `${run.info.runName ?? run.info.runId} ${key}: a step logged twice (${JSON.stringify(metric)})`);
    }
  }
  t.true(histories > 10, `metric histories read: ${histories}`);

  const lines = [
    `recovery figures (${config.prompts.limit} prompts, DPO checkpoint every ${config.dpo.checkpoint_every} steps, heartbeat timeout ${config.activities.heartbeat_timeout}):`,
    ...faults.map(
      (f) =>
        `  ${f.fault.padEnd(17)} in ${f.step.padEnd(9)} ${path.relative(runDir, f.stepDir).padEnd(26)} ` +
        `up again ${f.upSeconds.toFixed(1)} s, step running again ${f.recoverySeconds.toFixed(1)} s, ` +
        `items on disk at the kill ${f.itemsAtKill}${f.step === 'dpo' ? ' optimizer steps' : ''}, redone ${f.itemsRedone}, attempts ${f.attempts}`,
    ),
    `  MLflow: ${runs.length} runs, ${histories} metric histories, ${points} points, no step twice`,
  ];
  t.log(lines.join('\n'));
  console.log(lines.join('\n'));
  await client.connection.close();
});
