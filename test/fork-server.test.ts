/**
 * The worker's warm compute process (activities/fork-server.ts) under the compute-step activity, in the SDK's
 * MockActivityEnvironment with real Python: a step is forked by the server into its own group, cancellation
 * and a killed server both leave nothing running, a killed server comes back and serves the retry, and a
 * server that is down or refuses a step's environment means a plain spawn; the CPU worker's light server (no
 * torch) forks the headline plot that the tracking activities draw.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ForkServer, type StepHeartbeat, type StepResult, createRunComputeStep, runComputeProcess } from '../activities';
import { specText } from '../activities/manifest';
import { processRunning } from '../src/gpu/process-groups';
import { eventually, tempDir, venvPython } from './helpers/temporal-harness';

const test = anyTest as TestFn<{ server: ForkServer; dir: string }>;

const workerEnv = { CSR_TORCH_THREADS: '1' };

function newServer(dir: string, name = 'test', light = false): ForkServer {
  return new ForkServer({
    light,
    python: venvPython,
    env: { ...process.env, ...workerEnv, CUDA_VISIBLE_DEVICES: '', PYTHONUNBUFFERED: '1' },
    logFile: path.join(dir, `${name}.log`),
    name,
    restartDelayMs: 200,
    log: () => undefined,
  });
}

const deps = (server: ForkServer | undefined, extraEnv: Record<string, string> = {}) => ({
  env: { python: venvPython, venv: path.dirname(path.dirname(venvPython)) },
  gpus: [],
  workerId: 'mock',
  workerEnv: { ...workerEnv, ...extraEnv },
  heartbeatEveryMs: 100,
  killGraceMs: 2000,
  forkServer: server,
});

/** Parent pid and process group of a live process. */
function procStat(pid: number | undefined): { ppid: number; pgid: number } {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]), pgid: Number(fields[2]) };
}

/** Start a probe step; resolves with the running activity and the pid of its process once it reports one. */
async function startProbe(server: ForkServer | undefined, sleepS: number, dir: string, extraEnv = {}) {
  const env = new MockActivityEnvironment();
  let pid: number | null = null;
  env.on('heartbeat', (details: StepHeartbeat) => (pid ??= details.pid));
  const running = env.run(createRunComputeStep(deps(server, extraEnv)), {
    step: 'probe',
    spec: { out_dir: path.join(dir, `out-${Date.now()}-${Math.random()}`), sleep_s: sleepS },
    expectManifest: false,
  });
  running.catch(() => undefined); // awaited by the test; not an unhandled rejection meanwhile
  const leader = await eventually('the step pid', () => pid ?? undefined);
  return { env, running, leader };
}

test.before(async (t) => {
  const dir = tempDir('csr-fork-test-');
  const server = newServer(dir);
  t.true(await server.whenReady(180_000), 'the fork server got ready');
  t.context = { server, dir };
});

test.after.always(async (t) => {
  await t.context.server?.stop();
});

test.serial('a step is forked by the warm server into a group of its own, and reports as a spawned one', async (t) => {
  const { server, dir } = t.context;
  const { running, leader } = await startProbe(server, 1, dir);
  const stat = procStat(leader);
  t.truthy(server.pid);
  t.is<number | undefined, number | undefined>(stat.ppid, server.pid, "the step is the server's child");
  t.is(stat.pgid, leader, 'the step leads its own process group');
  // ps, pgrep and /proc show the step as if spawned (`python -m csr_compute probe --spec FILE`).
  const args = await eventually('the step command line', () => {
    const found = fs.readFileSync(`/proc/${leader}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return found.includes('csr_compute') ? found : undefined;
  });
  t.deepEqual(args.slice(1, 4), ['-m', 'csr_compute', 'probe']);
  t.regex(args[5] ?? '', /spec\.json$/);
  const result = (await running) as StepResult;
  t.false(result.skipped);
  t.false(processRunning(leader));
});

test.serial('cancelling a forked step kills its group and rethrows the CancelledFailure', async (t) => {
  const { server, dir } = t.context;
  const { env, running, leader } = await startProbe(server, 120, dir);
  t.is<number | undefined, number | undefined>(procStat(leader).ppid, server.pid);
  env.cancel('CANCELLED');
  await t.throwsAsync(running, { instanceOf: CancelledFailure });
  t.false(processRunning(leader));
});

test.serial('a killed server: its step dies, the attempt fails retryable, the server is back for the retry', async (t) => {
  const { server, dir } = t.context;
  const { running, leader } = await startProbe(server, 120, dir);
  const first = server.pid as number;
  t.is(procStat(leader).ppid, first);
  process.kill(first, 'SIGKILL');
  const failure = await t.throwsAsync(running, { instanceOf: ApplicationFailure });
  t.is(failure?.type, 'ComputeRetryable');
  t.false(failure?.nonRetryable);
  // The step's own parent watchdog usually says it first; else the worker reports the server lost.
  t.regex(failure?.message ?? '', /launching process \d+ is gone|fork server ended/);
  t.false(processRunning(leader), 'the step died with its server');
  t.true(await server.whenReady(180_000), 'the server was restarted');
  t.not(server.pid, first);
  const retry = await startProbe(server, 0.5, dir);
  const retryParent = procStat(retry.leader).ppid;
  t.is<number | undefined, number | undefined>(retryParent, server.pid, 'the retry is forked by the new server');
  await retry.running;
});

test.serial('a step whose environment the server cannot honour is spawned instead', async (t) => {
  const { server, dir } = t.context;
  // HF_HOME is read when transformers is imported: a forked step could not follow it.
  const { running, leader } = await startProbe(server, 1, dir, { HF_HOME: path.join(dir, 'hf') });
  t.is(procStat(leader).ppid, process.pid, 'spawned by the worker itself');
  await running;
});

test.serial('a step that comes while the server still imports waits for it and is forked', async (t) => {
  const dir = tempDir('csr-fork-test-');
  const starting = newServer(dir, 'starting');
  try {
    t.false(starting.isReady);
    const { running, leader } = await startProbe(starting, 0.5, dir);
    t.is<number | undefined, number | undefined>(procStat(leader).ppid, starting.pid);
    await running;
  } finally {
    await starting.stop();
  }
});

test.serial('without a ready server (stopped, or switched off) steps are spawned', async (t) => {
  const dir = tempDir('csr-fork-test-');
  const stopped = newServer(dir, 'stopped');
  await stopped.stop();
  t.false(stopped.isReady);
  for (const server of [stopped, undefined]) {
    const { running, leader } = await startProbe(server, 0.5, dir);
    t.is(procStat(leader).ppid, process.pid);
    await running;
  }
});

test.serial("the CPU worker's light server imports no torch and forks the plot step", async (t) => {
  const dir = tempDir('csr-fork-test-');
  const light = newServer(dir, 'light', true);
  try {
    t.true(await light.whenReady(60_000), 'the light server got ready');
    t.false(fs.readFileSync(`/proc/${light.pid}/maps`, 'utf8').includes('libtorch'), 'no torch in a light server');
    const out = path.join(dir, 'plot');
    fs.mkdirSync(out);
    const panel = { key: 'eval/toy_chair/CHAIR_I', title: 'toy_chair/CHAIR_I', direction: 'minimize', objective: true, points: [[0, 0.3], [1, 0.2]] };
    fs.writeFileSync(path.join(out, 'spec.json'), specText({ out_dir: out, title: 'run', panels: [panel] }));
    const drawn = await runComputeProcess({
      python: venvPython,
      step: 'plot',
      specFile: path.join(out, 'spec.json'),
      logFile: path.join(out, 'plot.log'),
      env: { ...process.env, CUDA_VISIBLE_DEVICES: '', PYTHONUNBUFFERED: '1' },
      forkServer: light,
    });
    t.is(drawn.code, 0, drawn.stderrTail);
    t.is(drawn.via, 'fork-server');
    t.true(fs.statSync(path.join(out, 'eval_metrics.png')).size > 0);
  } finally {
    await light.stop();
  }
});
