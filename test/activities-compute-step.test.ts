/**
 * The compute-step activity against a real Temporal dev server and real Python children (the `probe`
 * step and its `sleep_s` / `exit_with` knobs).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, CancelledFailure, defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { type ComputeStepInput, type StepHeartbeat, type StepResult, createActivities, specText } from '../activities';
import { GpuLeases } from '../src/gpu/leases';
import { processRunning } from '../src/gpu/process-groups';
import {
  createTestEnv,
  eventually,
  forkedMembers,
  forkingPython,
  pendingActivities,
  tempDir,
  testWorkflowsPath,
  venvPython,
} from './helpers/temporal-harness';
import type { RunStepOptions } from './workflows/compute-step-workflows';

interface Context {
  env: TestWorkflowEnvironment;
  bundle: WorkflowBundleWithSourceMap;
}
const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const [env, bundle] = await Promise.all([
    createTestEnv('ERROR'),
    bundleWorkflowCode({ workflowsPath: testWorkflowsPath }),
  ]);
  t.context = { env, bundle };
});

test.after.always(async (t) => {
  await t.context.env?.teardown();
});

let queues = 0;

/** A worker serving the test workflows and the compute activity, on a queue of its own. */
async function makeWorker(
  t: { context: Context; title: string },
  deps: { python?: string; gpus?: string[]; leases?: GpuLeases } = {},
): Promise<{ worker: Worker; taskQueue: string }> {
  const taskQueue = `compute-step-${++queues}`;
  const worker = await Worker.create({
    connection: t.context.env.nativeConnection,
    taskQueue,
    workflowBundle: t.context.bundle,
    activities: createActivities({
      env: { python: deps.python ?? venvPython, venv: path.dirname(path.dirname(venvPython)) },
      gpus: deps.gpus ?? [],
      leases: deps.leases,
      workerId: `test-${taskQueue}`,
      hostQueue: 'csr-host-test',
      heartbeatEveryMs: 200,
      killGraceMs: 3000,
    }),
    // Let every heartbeat reach the server so describe() shows the latest one.
    maxHeartbeatThrottleInterval: '100ms',
    shutdownGraceTime: 0,
  });
  return { worker, taskQueue };
}

function start(t: { context: Context }, input: ComputeStepInput, options: RunStepOptions) {
  return t.context.env.client.workflow.start('runStep', {
    args: [input, options],
    taskQueue: options.taskQueue,
    workflowId: `step-${options.taskQueue}-${Date.now()}`,
  });
}

const probeSpec = (outDir: string, extra: Record<string, unknown> = {}) => ({ out_dir: outDir, ...extra });

test.serial('progress lines become heartbeat details while the probe sleeps', async (t) => {
  const outDir = tempDir();
  const { worker, taskQueue } = await makeWorker(t);
  await worker.runUntil(async () => {
    const handle = await start(
      t,
      { step: 'probe', spec: probeSpec(outDir, { sleep_s: 6 }), label: 'probe heartbeat test', expectManifest: false },
      {
        taskQueue,
        maximumAttempts: 1,
        heartbeatTimeoutMs: 5000,
      },
    );
    const beat = await eventually('a progress heartbeat', async () => {
      const [pending] = await pendingActivities(handle);
      const details = pending?.details as StepHeartbeat | undefined;
      return details && details.done !== null && details.done > 0 ? details : undefined;
    });
    t.is(beat.step, 'probe');
    t.is(beat.label, 'probe heartbeat test');
    t.is(beat.unit, 'ticks');
    t.is(beat.total, 60);
    t.is(beat.attempt, 1);
    t.is(beat.phase, 'running');
    t.true(typeof beat.rate === 'number' && beat.rate > 0);
    t.true(typeof beat.eta_s === 'number');
    t.is(beat.reused, 0);
    t.true(typeof beat.pid === 'number' && processRunning(beat.pid), 'the heartbeat names the live child');
    const later = await eventually('a later heartbeat', async () => {
      const details = (await pendingActivities(handle))[0]?.details as StepHeartbeat | undefined;
      return details && details.done !== null && details.done > (beat.done as number) ? details : undefined;
    });
    t.true((later.done as number) > (beat.done as number));

    const result = await handle.result();
    t.false(result.skipped);
    t.is(result.manifestSha256, null);
    t.is(result.attempt, 1);
    t.true(result.wallSeconds >= 6);
    t.false(processRunning(beat.pid as number));
    t.true(fs.existsSync(path.join(outDir, 'logs', 'probe-attempt-1.log')));
    t.deepEqual(JSON.parse(fs.readFileSync(path.join(outDir, 'spec.json'), 'utf8')), probeSpec(outDir, { sleep_s: 6 }));
  });
});

test.serial('cancelling the workflow kills the whole process group of the step', async (t) => {
  const dir = tempDir();
  const outDir = path.join(dir, 'out');
  const { python, membersFile } = forkingPython(dir);
  const runDir = path.join(dir, 'run');
  const leases = new GpuLeases({ runDir, hostId: 'testhost', owner: 'gpu-0', log: () => undefined });
  const { worker, taskQueue } = await makeWorker(t, { python, gpus: ['0'], leases });
  await worker.runUntil(async () => {
    const handle = await start(
      t,
      { step: 'probe', spec: probeSpec(outDir, { sleep_s: 120 }), expectManifest: false },
      {
        taskQueue,
        maximumAttempts: 1,
        heartbeatTimeoutMs: 5000,
      },
    );
    const pid = await eventually('the child pid in a heartbeat', async () => {
      const details = (await pendingActivities(handle))[0]?.details as StepHeartbeat | undefined;
      return details?.pid ?? undefined;
    });
    t.is(leases.read('0')?.pid, pid, 'the lease names the compute process group');
    const member = await eventually('the forked group member', () => forkedMembers(membersFile)[0]);
    t.true(processRunning(member) && processRunning(pid));
    await handle.cancel();
    const error = await t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError });
    t.true(error?.cause instanceof CancelledFailure);
    t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'the leader is gone');
    t.false(processRunning(member), 'the forked member is gone too');
    t.is(leases.read('0'), undefined, 'the lease was released after the group died');
  });
  leases.close();
});

test.serial('exit 2 fails at once, non-retryable, after exactly one attempt', async (t) => {
  const outDir = tempDir();
  const { worker, taskQueue } = await makeWorker(t);
  await worker.runUntil(async () => {
    const handle = await start(
      t,
      { step: 'probe', spec: probeSpec(outDir, { exit_with: 2 }), expectManifest: false },
      {
        taskQueue,
        maximumAttempts: 5,
        heartbeatTimeoutMs: 10_000,
      },
    );
    const error = await t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError });
    const activityFailure = error?.cause as ActivityFailure;
    t.true(activityFailure instanceof ActivityFailure);
    const cause = activityFailure.cause as ApplicationFailure;
    t.is(cause.type, 'ComputeBadSpec');
    t.true(cause.nonRetryable);
    t.deepEqual(fs.readdirSync(path.join(outDir, 'logs')), ['probe-attempt-1.log']);
  });
});

test.serial('a bad spec reported by the step carries its own message', async (t) => {
  const outDir = tempDir();
  const { worker, taskQueue } = await makeWorker(t);
  await worker.runUntil(async () => {
    const handle = await start(
      t,
      { step: 'probe', spec: probeSpec(outDir, { sleep_s: -1 }), expectManifest: false },
      {
        taskQueue,
        maximumAttempts: 5,
        heartbeatTimeoutMs: 10_000,
      },
    );
    const error = await t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError });
    const cause = (error?.cause as ActivityFailure).cause as ApplicationFailure;
    t.is(cause.type, 'ComputeBadSpec');
    t.is(cause.message, 'probe: sleep_s: expected number >= 0, got -1');
  });
});

test.serial('exit 75 is retried: two attempts with maximumAttempts 2, then ComputeRetryable', async (t) => {
  const outDir = tempDir();
  const { worker, taskQueue } = await makeWorker(t);
  await worker.runUntil(async () => {
    const handle = await start(
      t,
      { step: 'probe', spec: probeSpec(outDir, { exit_with: 75 }), expectManifest: false },
      {
        taskQueue,
        maximumAttempts: 2,
        heartbeatTimeoutMs: 10_000,
      },
    );
    const error = await t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError });
    const cause = (error?.cause as ActivityFailure).cause as ApplicationFailure;
    t.is(cause.type, 'ComputeRetryable');
    t.false(cause.nonRetryable);
    t.regex(cause.message, /probe exited with code 75/);
    t.deepEqual(fs.readdirSync(path.join(outDir, 'logs')).sort(), ['probe-attempt-1.log', 'probe-attempt-2.log']);
  });
});

/** Write a finished step's artifact and manifest through the Python contract, as a real step would. */
function writeManifestWithPython(outDir: string, spec: Record<string, unknown>, stats: Record<string, unknown>): void {
  fs.mkdirSync(path.join(outDir, 'data'), { recursive: true });
  fs.writeFileSync(path.join(outDir, 'data', 'pairs.jsonl'), '{"id": 1}\n{"id": 2}\n');
  // What the activity writes before it launches a step, and what the manifest's spec_file_sha256 is of.
  fs.writeFileSync(path.join(outDir, 'spec.json'), specText(spec));
  const script =
    'import json, sys\n' +
    'from csr_compute.contract import write_manifest\n' +
    'args = json.loads(sys.stdin.read())\n' +
    'write_manifest(args["out_dir"], step="probe", spec=args["spec"], files=["data/pairs.jsonl"],\n' +
    '               items_total=2, items_reused=0, items_computed=2, stats=args["stats"])\n';
  // The step reads its spec from JSON, so hash what JSON gives back.
  const input = JSON.stringify({ out_dir: outDir, spec, stats });
  execFileSync(venvPython, ['-c', script], { input, stdio: ['pipe', 'ignore', 'inherit'] });
}

test.serial('skip-if-done: an unchanged finished step returns its manifest without launching', async (t) => {
  const outDir = tempDir();
  // exit_with 2: if the activity launched the step, the run would fail, so success proves the skip.
  const spec = {
    out_dir: outDir,
    exit_with: 2,
    model: { path: '/models/ünïcode', alpha: 0.9, tiny: 1e-7, big: 1e21, list: [1, 2.5, 'x', null, true] },
  };
  writeManifestWithPython(outDir, spec, { loss: 0.125, pairs: 2, note: 'text is dropped', nested: { x: 1 } });
  const specWritten = fs.statSync(path.join(outDir, 'spec.json')).mtimeMs;
  const { worker, taskQueue } = await makeWorker(t);
  await worker.runUntil(async () => {
    const options = { taskQueue, maximumAttempts: 1, heartbeatTimeoutMs: 10_000 };
    const result: StepResult = await (await start(t, { step: 'probe', spec }, options)).result();
    t.true(result.skipped);
    t.is(result.itemsTotal, 2);
    t.is(result.itemsComputed, 0, 'this attempt computed nothing');
    t.is(result.itemsReused, 2, 'every item of a skipped step is reused');
    t.deepEqual(result.stats, { loss: 0.125, pairs: 2 });
    t.regex(result.manifestSha256 ?? '', /^[0-9a-f]{64}$/);
    t.false(fs.existsSync(path.join(outDir, 'logs')), 'nothing was launched');
    t.is(fs.statSync(path.join(outDir, 'spec.json')).mtimeMs, specWritten, 'spec.json was not rewritten');

    // Same spec, changed artifact: the step must run again (and here fail, as its spec says).
    fs.appendFileSync(path.join(outDir, 'data', 'pairs.jsonl'), '{"id": 3}\n');
    const rerun = await start(t, { step: 'probe', spec }, options);
    const error = await t.throwsAsync(rerun.result(), { instanceOf: WorkflowFailedError });
    t.is(((error?.cause as ActivityFailure).cause as ApplicationFailure).type, 'ComputeBadSpec');
    t.true(fs.existsSync(path.join(outDir, 'logs', 'probe-attempt-1.log')));
  });
});

test.serial('a changed spec is not skipped', async (t) => {
  const outDir = tempDir();
  const spec = { out_dir: outDir, exit_with: 2, alpha: 0.9 };
  writeManifestWithPython(outDir, spec, {});
  const { worker, taskQueue } = await makeWorker(t);
  await worker.runUntil(async () => {
    const handle = await start(
      t,
      { step: 'probe', spec: { ...spec, alpha: 0.8 } },
      { taskQueue, maximumAttempts: 1, heartbeatTimeoutMs: 10_000 },
    );
    await t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError });
    t.true(fs.existsSync(path.join(outDir, 'logs', 'probe-attempt-1.log')), 'the step was launched');
  });
});

test.serial('a successful step leaves no forked process behind', async (t) => {
  const dir = tempDir();
  const { python, membersFile } = forkingPython(dir);
  const { worker, taskQueue } = await makeWorker(t, { python });
  await worker.runUntil(async () => {
    const handle = await start(
      t,
      { step: 'probe', spec: probeSpec(path.join(dir, 'out')), expectManifest: false },
      {
        taskQueue,
        maximumAttempts: 1,
        heartbeatTimeoutMs: 10_000,
      },
    );
    await handle.result();
  });
  const [member] = forkedMembers(membersFile);
  t.true(member !== undefined);
  t.false(processRunning(member as number));
});

test.serial('a step that exits 0 without its manifest fails non-retryable', async (t) => {
  const outDir = tempDir();
  const { worker, taskQueue } = await makeWorker(t);
  await worker.runUntil(async () => {
    const handle = await start(
      t,
      { step: 'probe', spec: probeSpec(outDir) },
      { taskQueue, maximumAttempts: 3, heartbeatTimeoutMs: 10_000 },
    );
    const error = await t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError });
    const cause = (error?.cause as ActivityFailure).cause as ApplicationFailure;
    t.is(cause.type, 'ComputeNoManifest');
    t.regex(cause.message, /manifest\.json/);
  });
});

test.serial('inputs and results stay far below 64 KB for a realistic spec', async (t) => {
  const outDir = tempDir();
  const spec = {
    out_dir: outDir,
    model: { source: 'path', path: '/data/models/llava-v1.5-7b-csr-iter2-merged', dtype: 'bfloat16' },
    prompts_file: '/data/csr/prompts/iteration-2-sample.jsonl',
    images_dir: '/data/coco/train2014',
    shard: { index: 7, count: 8 },
    generate: {
      num_beams: 5,
      token_beams: 5,
      beam_groups: 5,
      diversity_penalty: 3,
      max_new_tokens: 70,
      max_length: 1024,
    },
    prune: { keep_top: 1, keep_bottom: 2, score: 'self' },
    batch_size: 16,
    seed: 1234,
    tracking: { run_id: 'a'.repeat(32), experiment: 'csr-llava-7b' },
  };
  const stats = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`metric_${i}_${'x'.repeat(100)}`, i / 7]));
  writeManifestWithPython(outDir, spec, stats);
  const { worker, taskQueue } = await makeWorker(t);
  const input: ComputeStepInput = {
    step: 'probe',
    spec,
    label: 'generate shard 8/8 iteration 2',
    env: { MLFLOW_TRACKING_URI: 'http://127.0.0.1:5000', MLFLOW_RUN_ID: 'a'.repeat(32), CSR_TORCH_THREADS: '4' },
  };
  const result = await worker.runUntil(async () =>
    (await start(t, input, { taskQueue, maximumAttempts: 1, heartbeatTimeoutMs: 10_000 })).result(),
  );
  const size = (value: unknown) => defaultPayloadConverter.toPayload(value)?.data?.length ?? Infinity;
  t.true(result.skipped);
  t.true(size(input) < 4 * 1024, `input ${size(input)} bytes`);
  t.true(size(result) < 16 * 1024, `result ${size(result)} bytes`);
  t.true(Object.keys(result.stats).length <= 64);
  const beat: StepHeartbeat = {
    done: 1e9,
    total: 1e9,
    reused: 1e9,
    rate: 123.456,
    eta_s: 1e6,
    unit: 'prompts',
    step: 'generate',
    label: input.label as string,
    attempt: 99,
    pid: 4_000_000,
    phase: 'running',
    gpus: ['0', '1', '2', '3'],
  };
  t.true(size(beat) < 1024, `heartbeat ${size(beat)} bytes`);
});
