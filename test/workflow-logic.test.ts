/**
 * The logic of the run and iteration workflows, on the real dev server with the real workflow code and
 * test activities standing in for compute (each answers at once): whether an iteration improved (the
 * gate, either direction), `stop_when_worse`, pause and resume between steps, and where each step runs
 * (a multi-GPU DPO on the host queue, curate on the CPU worker, the rest on the GPU queue), and the tracking
 * lane (MLflow calls in order, off the compute steps' path; a failed one still fails the run; an iteration's
 * record carried onto the next iteration's lane; the run's MLflow run opened on the first iteration's lane; the
 * DPO curves logged as soon as DPO has finished). Seconds, not the minutes of test/slow/workflows.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import anyTest, { type TestFn } from 'ava';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { loadConfig, type CsrConfig } from '../src/config';
import type { ComputeStepInput, StepResult } from '../activities/types';
import type { CsrRunInput, IterationStatus, IterationSummary, RunPaths, RunStatus } from '../src/shared/run-types';
import { CPU_QUEUE, GPU_QUEUE, hostQueue } from '../src/shared/task-queues';
import { iterationStatusQuery, pauseSignal, resumeSignal, runStatusQuery } from '../workflows/messages';
import { createTestEnv, eventually, repoRoot, tempDir } from './helpers/temporal-harness';

const test = anyTest as TestFn<{ env: TestWorkflowEnvironment }>;

test.before(async (t) => {
  t.context.env = await createTestEnv('ERROR');
});
test.after.always(async (t) => {
  await t.context.env?.teardown();
});

const OBJECTIVE = 'toy_chair_dev/CHAIR_I';
const HOST_QUEUE = hostQueue('test-host');

/** One compute step as a stand-in saw it: where it ran and with how many GPUs. */
interface Launch {
  queue: string;
  step: string;
  iteration: number;
  gpuCount?: number;
}

interface Stage {
  launches: Launch[];
  /** Resolves a step that `holdStep` holds. */
  release: () => void;
  run(input: CsrRunInput): Promise<IterationSummary[]>;
}

const iterationOf = (dir: string) => Number(/iter-(\d+)/.exec(dir)?.[1]);

/**
 * Workers on the CPU, GPU and host queues with stand-in activities. `objectives[i]` is what iteration i's
 * evaluation reports; a step named `holdStep` waits for `release()`; `light` replaces or adds CPU-queue
 * activities (tracking, by default off: trackRunStart answers nothing).
 */
async function stage(
  env: TestWorkflowEnvironment,
  objectives: number[],
  holdStep?: string,
  light: Record<string, (...args: never[]) => Promise<unknown>> = {},
): Promise<Stage & { workers: Worker[] }> {
  const launches: Launch[] = [];
  let release = () => undefined as void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const compute = (queue: string) => ({
    async runComputeStep(input: ComputeStepInput): Promise<StepResult> {
      const outDir = String(input.spec.out_dir);
      const gpus = input.gpuCount ? { gpuCount: input.gpuCount } : {};
      launches.push({ queue, step: input.step, iteration: iterationOf(outDir), ...gpus });
      if (input.step === holdStep) await held;
      const stats: Record<string, number> = input.step === 'curate' ? { pairs: 4 } : {};
      const counts = { itemsTotal: 1, itemsReused: 0, itemsComputed: 1 };
      return { step: input.step, outDir, manifestSha256: null, ...counts, stats, skipped: false, attempt: 1, wallSeconds: 0 };
    },
    async hostTaskQueue() {
      return HOST_QUEUE;
    },
  });
  const root = tempDir('csr-logic-');
  const paths: RunPaths = { artifactRoot: root, baseModel: '/m', clip: '/c', promptsFile: '/p.json', imagesDir: '/i', toyworldDir: '/t' };
  const connection = env.nativeConnection;
  const workers = await Promise.all([
    Worker.create({
      connection,
      taskQueue: CPU_QUEUE,
      workflowsPath: require.resolve('../workflows'),
      activities: {
        ...compute('cpu'),
        prepareRun: async () => ({ artifactRoot: root }),
        resolveRunPaths: async () => paths,
        trackRunStart: async () => undefined,
        samplePrompts: async () => undefined,
        readEvaluation: async (input: { outDirs: { outDir: string }[] }) => ({
          [OBJECTIVE]: objectives[iterationOf(input.outDirs[0]!.outDir)]!,
        }),
        ...light,
      },
    }),
    Worker.create({ connection, taskQueue: GPU_QUEUE, activities: compute('gpu') }),
    Worker.create({ connection, taskQueue: HOST_QUEUE, activities: compute('host') }),
  ]);
  const run = (input: CsrRunInput) =>
    env.client.workflow.execute('csrRun', { taskQueue: CPU_QUEUE, workflowId: input.runKey, args: [input] }) as Promise<IterationSummary[]>;
  return { launches, release: () => release(), run, workers };
}

/** Run `body` while every worker of the stage polls. */
function polling<T>(workers: Worker[], body: () => Promise<T>): Promise<T> {
  return workers.reduce<() => Promise<T>>((inner, worker) => () => worker.runUntil(inner), body)();
}

function runInput(runKey: string, adjust: (config: CsrConfig) => void): CsrRunInput {
  const config = loadConfig(path.join(repoRoot, 'configs', 'toy.yaml'));
  config.evaluate.benchmarks = config.evaluate.benchmarks.filter((b) => b.name === 'toy_chair_dev');
  adjust(config);
  return { config, configHash: 'h', runKey, nextIteration: 0, history: [] };
}

test.serial('the gate: an iteration improved when its objective moved the configured way, and the run goes on either way', async (t) => {
  for (const direction of ['minimize', 'maximize'] as const) {
    const { workers, run } = await stage(t.context.env, [20, 18, 19]);
    const history = await polling(workers, () =>
      run(
        runInput(`gate-${direction}`, (config) => {
          config.iterations = 2;
          config.evaluate.objective_direction = direction;
          config.evaluate.stop_when_worse = false;
        }),
      ),
    );
    t.deepEqual(
      history.map((h) => [h.iteration, h.improved]),
      direction === 'minimize'
        ? [[0, undefined], [1, true], [2, false]]
        : [[0, undefined], [1, false], [2, true]],
      direction,
    );
  }
});

test.serial('stop_when_worse: the run stops after the first iteration that is worse than the one before', async (t) => {
  const { workers, run, launches } = await stage(t.context.env, [20, 22, 18]);
  const input = runInput('stop-when-worse', (config) => {
    config.iterations = 2;
    config.evaluate.stop_when_worse = true;
  });
  const [history, status] = await polling(workers, async () => [
    await run(input),
    await t.context.env.client.workflow.getHandle('stop-when-worse').query(runStatusQuery),
  ] as const);
  t.deepEqual(history.map((h) => [h.iteration, h.improved]), [[0, undefined], [1, false]]);
  t.false(launches.some((l) => l.iteration === 2), 'iteration 2 never started');
  t.is(status.phase, 'stopped');
});

test.serial('steps run where they belong: curate on the CPU worker, a 2-GPU DPO on the host queue with its GPU count', async (t) => {
  const { workers, run, launches } = await stage(t.context.env, [20, 18]);
  const input = runInput('dpo-routing', (config) => {
    config.iterations = 1;
    config.workers.gpu_shards = 2;
    config.workers.dpo_gpus = 2;
  });
  await polling(workers, () => run(input));
  const iteration1 = launches.filter((l) => l.iteration === 1).map(({ queue, step, gpuCount }) => [step, queue, gpuCount ?? 1]);
  t.deepEqual(iteration1, [
    ['generate', 'gpu', 1],
    ['generate', 'gpu', 1],
    ['reward', 'gpu', 1],
    ['reward', 'gpu', 1],
    ['curate', 'cpu', 1],
    ['dpo', 'host', 2],
    ['merge', 'gpu', 1],
    ['evaluate', 'gpu', 1],
  ]);
  // One GPU: DPO stays on the shared GPU queue.
  const single = await stage(t.context.env, [20, 18]);
  await polling(single.workers, () => single.run(runInput('dpo-one-gpu', (config) => (config.iterations = 1))));
  t.deepEqual(single.launches.filter((l) => l.step === 'dpo').map((l) => [l.queue, l.gpuCount]), [['gpu', undefined]]);
});

test.serial('pause holds the iteration before its next step (the step in flight finishes); resume goes on', async (t) => {
  const { workers, run, launches, release } = await stage(t.context.env, [20, 18], 'generate');
  const input = runInput('pause-run', (config) => (config.iterations = 1));
  const client = t.context.env.client;
  await polling(workers, async () => {
    const result = run(input);
    const child = client.workflow.getHandle('pause-run/iter-1');
    await eventually('iteration 1 generating', () => (launches.some((l) => l.step === 'generate') ? true : undefined));
    // As `csr pause` does: the run, then its iteration in flight.
    await client.workflow.getHandle('pause-run').signal(pauseSignal);
    await child.signal(pauseSignal);
    release();
    const paused = await eventually<IterationStatus>('paused before reward', async () => {
      const status = await child.query(iterationStatusQuery);
      return status.currentStep === 'paused before reward' ? status : undefined;
    });
    t.true(paused.paused);
    const run_ = await client.workflow.getHandle('pause-run').query<RunStatus>(runStatusQuery);
    t.is(run_.phase, 'paused');
    t.false(launches.some((l) => l.step === 'reward'), 'nothing after the step in flight started');
    await client.workflow.getHandle('pause-run').signal(resumeSignal);
    await child.signal(resumeSignal);
    const history = await result;
    t.deepEqual(history.map((h) => h.iteration), [0, 1]);
  });
  t.true(launches.some((l) => l.step === 'reward'));
});

/** Stand-in tracking activities that log each call (in order) to `calls`. */
function trackingStandIns(
  calls: string[],
  onIterationStart: (iteration: number) => Promise<void>,
  onIterationEnd: (iteration: number) => Promise<void> = async () => undefined,
  onRunStart: () => Promise<void> = async () => undefined,
) {
  return {
    trackRunStart: async (input: { runKey: string }) => {
      await onRunStart();
      calls.push('run start');
      return { experimentName: 'x', parentKey: input.runKey, parentRunId: 'parent' };
    },
    trackIterationStart: async (input: { iteration: number }) => {
      await onIterationStart(input.iteration);
      calls.push(`iteration ${input.iteration} start`);
      return { key: `k${input.iteration}`, runId: `run-${input.iteration}` };
    },
    trackDpoCurves: async (input: { iteration: number; iterationRunId?: string }) =>
      void calls.push(`iteration ${input.iteration} curves (${input.iterationRunId})`),
    trackIterationEnd: async (input: { iteration: number; iterationRunId?: string; dpoDir?: string }) => {
      await onIterationEnd(input.iteration);
      calls.push(`iteration ${input.iteration} end (${input.iterationRunId})${input.dpoDir ? ' with curves' : ''}`);
    },
    trackRunEnd: async (input: { status: string }) => void calls.push(`run end ${input.status}`),
  };
}

/** Every message along an error's cause chain. */
function messages(error: unknown): string {
  const parts: string[] = [];
  for (let e = error as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) parts.push(String(e.message));
  return parts.join(' <- ');
}

/** The tracking calls of a one-iteration run, in order, whatever lane they run on. */
const ONE_ITERATION_TRACKING = [
  'run start',
  'iteration 0 start',
  'iteration 0 end (run-0)',
  'iteration 1 start',
  'iteration 1 curves (run-1)', // as soon as DPO has finished; the closing record no longer carries them
  'iteration 1 end (run-1)',
  'run end FINISHED',
];

test.serial('tracking lane: a slow trackIterationStart no longer delays the first step; MLflow sees the calls in the same order', async (t) => {
  const calls: string[] = [];
  const sawStepFirst: Record<number, boolean> = {};
  let launches: Launch[] = [];
  // The iteration's MLflow run answers only once a compute step of that iteration has started (or after
  // 20 s): a workflow that waited for it would hold the step back that long.
  const slowStart = async (iteration: number) => {
    const deadline = Date.now() + 20_000;
    while (!launches.some((l) => l.iteration === iteration) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    sawStepFirst[iteration] = launches.some((l) => l.iteration === iteration);
  };
  const staged = await stage(t.context.env, [20, 18], undefined, trackingStandIns(calls, slowStart));
  launches = staged.launches;
  const started = Date.now();
  const history = await polling(staged.workers, () => staged.run(runInput('tracking-lane', (config) => (config.iterations = 1))));
  t.deepEqual(sawStepFirst, { 0: true, 1: true }, 'each iteration started computing while its MLflow run was still being made');
  t.true(Date.now() - started < 15_000, 'no step waited out the slow tracking call');
  t.deepEqual(calls, ONE_ITERATION_TRACKING);
  t.deepEqual(history.map((h) => h.mlflowRunId), ['run-0', 'run-1'], 'the summary still names each iteration\'s MLflow run');

  // What this code records replays against it (the lane adds no nondeterminism).
  const client = t.context.env.client;
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: new DefaultLogger('WARN') });
  const iteration0 = await client.workflow.getHandle('tracking-lane/iter-0').fetchHistory();
  // The run's first execution (the one that prepared, before continue-as-new) started iteration 0.
  const firstRunId = iteration0.events?.[0]?.workflowExecutionStartedEventAttributes?.parentWorkflowExecution?.runId ?? undefined;
  t.truthy(firstRunId);
  const recorded = [
    { workflowId: 'tracking-lane', history: await client.workflow.getHandle('tracking-lane', firstRunId).fetchHistory() },
    { workflowId: 'tracking-lane', history: await client.workflow.getHandle('tracking-lane').fetchHistory() },
    { workflowId: 'tracking-lane/iter-0', history: iteration0 },
    { workflowId: 'tracking-lane/iter-1', history: await client.workflow.getHandle('tracking-lane/iter-1').fetchHistory() },
  ];
  for (const { workflowId, history: events } of recorded) {
    await t.notThrowsAsync(Worker.runReplayHistory({ workflowBundle }, events, workflowId), workflowId);
  }
});

test.serial('tracking lane: a failed tracking call still fails the iteration and the run, which closes its MLflow run as FAILED', async (t) => {
  const calls: string[] = [];
  let failed = false;
  const failing = trackingStandIns(calls, async (iteration) => {
    if (iteration === 1) {
      failed = true;
      throw ApplicationFailure.nonRetryable('MLflow refused the run', 'TrackingBroken');
    }
  });
  // Iteration 1's generate is held until the tracking call has failed: the iteration stops before its next step.
  const staged = await stage(t.context.env, [20, 18], 'generate', failing);
  const input = runInput('tracking-fails', (config) => (config.iterations = 1));
  const error = await polling(staged.workers, async () => {
    const result = staged.run(input);
    void result.catch(() => undefined); // inspected below
    await eventually('trackIterationStart failed', () => (failed ? true : undefined));
    await new Promise((r) => setTimeout(r, 1000));
    staged.release();
    return t.throwsAsync(result);
  });
  t.regex(messages(error), /MLflow refused the run/, messages(error));
  t.deepEqual(calls, ['run start', 'iteration 0 start', 'iteration 0 end (run-0)', 'run end FAILED'], JSON.stringify(staged.launches));
  t.false(staged.launches.some((l) => l.iteration === 1 && l.step === 'reward'), 'no step after the failed call started');
});

test.serial('tracking carry: the next iteration computes while the previous one is logged; the run ends after the last one is', async (t) => {
  const calls: string[] = [];
  let launches: Launch[] = [];
  let sawNextStep = false;
  // Iteration 0's record answers only once a compute step of iteration 1 has started (or after 20 s): a run
  // that waited for it before starting iteration 1 would hold that step back that long.
  const slowEnd = async (iteration: number) => {
    if (iteration !== 0) return;
    const deadline = Date.now() + 20_000;
    while (!launches.some((l) => l.iteration === 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    sawNextStep = launches.some((l) => l.iteration === 1);
  };
  const staged = await stage(t.context.env, [20, 18], undefined, trackingStandIns(calls, async () => undefined, slowEnd));
  launches = staged.launches;
  const started = Date.now();
  const history = await polling(staged.workers, () => staged.run(runInput('tracking-carry', (config) => (config.iterations = 1))));
  t.true(sawNextStep, "iteration 1 started computing while iteration 0's record was still being written");
  t.true(Date.now() - started < 15_000, 'no step waited out the slow tracking call');
  t.deepEqual(calls, ONE_ITERATION_TRACKING);
  t.deepEqual(history.map((h) => h.mlflowRunId), ['run-0', 'run-1']);
  t.false(history.some((h) => 'trackingEnd' in h), 'the carried record stays out of the run history');

  // What this code records replays against it; CSR_RECORD_HISTORIES=DIR also writes it there (replay fixtures).
  const client = t.context.env.client;
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: new DefaultLogger('WARN') });
  const iteration0 = await client.workflow.getHandle('tracking-carry/iter-0').fetchHistory();
  const firstRunId = iteration0.events?.[0]?.workflowExecutionStartedEventAttributes?.parentWorkflowExecution?.runId ?? undefined;
  t.truthy(firstRunId);
  const recorded = [
    { file: 'csr-run-tracking-carry.json', workflowId: 'tracking-carry', history: await client.workflow.getHandle('tracking-carry', firstRunId).fetchHistory() },
    { file: 'csr-run-tracking-carry-end.json', workflowId: 'tracking-carry', history: await client.workflow.getHandle('tracking-carry').fetchHistory() },
    { file: 'csr-iteration-tracking-carry.json', workflowId: 'tracking-carry/iter-1', history: await client.workflow.getHandle('tracking-carry/iter-1').fetchHistory() },
  ];
  for (const { file, workflowId, history: events } of recorded) {
    await t.notThrowsAsync(Worker.runReplayHistory({ workflowBundle }, events, workflowId), workflowId);
    if (process.env.CSR_RECORD_HISTORIES) writeHistory(path.join(process.env.CSR_RECORD_HISTORIES, file), events);
  }
});

/**
 * Write a history as `temporal workflow show --output json` does (what test/workflow-replay.test.ts reads). An
 * existing file is kept: it holds an older branch that must go on replaying (remove it to record it again).
 */
function writeHistory(file: string, history: proto.temporal.api.history.v1.IHistory): void {
  if (fs.existsSync(file)) return;
  const protoDir = path.dirname(require.resolve('@temporalio/proto/package.json'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { toJson } = require(require.resolve('protobufjs/ext/protojson', { paths: [protoDir] })) as {
    toJson: (type: unknown, message: unknown) => unknown;
  };
  // The proto package's own protobufjs types (as the replay test's loadHistory uses them for reading).
  const type = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');
  fs.writeFileSync(file, `${JSON.stringify(toJson(type, history), null, 2)}\n`);
}

test.serial("run tracking on the lane: a slow trackRunStart no longer holds iteration 0's first step; the run still gets its MLflow refs", async (t) => {
  const calls: string[] = [];
  let launches: Launch[] = [];
  let sawStep = false;
  // The parent MLflow run answers only once a compute step has started (or after 20 s): a run that waited for
  // it before starting iteration 0 would hold that step back that long.
  const slowRunStart = async () => {
    const deadline = Date.now() + 20_000;
    while (launches.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    sawStep = launches.length > 0;
  };
  const standIns = trackingStandIns(calls, async () => undefined, async () => undefined, slowRunStart);
  const staged = await stage(t.context.env, [20, 18], undefined, standIns);
  launches = staged.launches;
  const started = Date.now();
  const client = t.context.env.client;
  const [history, status] = await polling(staged.workers, async () => [
    await staged.run(runInput('run-tracking-lane', (config) => (config.iterations = 1))),
    await client.workflow.getHandle('run-tracking-lane').query(runStatusQuery),
  ]);
  t.true(sawStep, 'iteration 0 started computing while the parent MLflow run was still being made');
  t.true(Date.now() - started < 15_000, 'no step waited out the slow tracking call');
  t.deepEqual(calls, ONE_ITERATION_TRACKING);
  t.deepEqual(history.map((h) => h.mlflowRunId), ['run-0', 'run-1']);
  t.false(history.some((h) => 'runTracking' in h), 'the refs stay out of the run history');
  t.deepEqual(status.mlflow, { experimentName: 'x', runId: 'parent' }, 'the run keeps the refs iteration 0 handed back');

  // What this code records replays against it; CSR_RECORD_HISTORIES=DIR also writes it there (replay fixtures).
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: new DefaultLogger('WARN') });
  const iteration0 = await client.workflow.getHandle('run-tracking-lane/iter-0').fetchHistory();
  const firstRunId = iteration0.events?.[0]?.workflowExecutionStartedEventAttributes?.parentWorkflowExecution?.runId ?? undefined;
  const recorded = [
    { file: 'csr-run-run-tracking-lane.json', workflowId: 'run-tracking-lane', history: await client.workflow.getHandle('run-tracking-lane', firstRunId).fetchHistory() },
    { file: 'csr-iteration-run-tracking-lane.json', workflowId: 'run-tracking-lane/iter-0', history: iteration0 },
  ];
  for (const { file, workflowId, history: events } of recorded) {
    await t.notThrowsAsync(Worker.runReplayHistory({ workflowBundle }, events, workflowId), workflowId);
    if (process.env.CSR_RECORD_HISTORIES) writeHistory(path.join(process.env.CSR_RECORD_HISTORIES, file), events);
  }
});

test.serial('run tracking on the lane: a run that fails in its preparation still opens and closes its MLflow run as FAILED', async (t) => {
  const calls: string[] = [];
  const broken = {
    ...trackingStandIns(calls, async () => undefined),
    prepareRun: async () => {
      throw ApplicationFailure.nonRetryable('no such model folder', 'ComputeMissingInput');
    },
  };
  const staged = await stage(t.context.env, [20], undefined, broken);
  const error = await polling(staged.workers, () => t.throwsAsync(staged.run(runInput('prepare-fails', () => undefined))));
  t.regex(messages(error), /no such model folder/);
  t.deepEqual(calls, ['run start', 'run end FAILED']);
  t.is(staged.launches.length, 0);
});
