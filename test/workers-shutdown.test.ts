/**
 * Workers against a real dev server: the start-up probe, GPU pinning, and that no compute process
 * outlives a worker, whether it is shut down (in-process or by SIGTERM) or dies (SIGKILL, then the
 * next start reaps what it left).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { StepHeartbeat } from '../activities';
import { type CsrEnv, csrEnv } from '../src/env';
import { GpuLeases } from '../src/gpu/leases';
import { processRunning } from '../src/gpu/process-groups';
import { CPU_QUEUE, GPU_QUEUE, hostQueue } from '../src/shared/task-queues';
import { startWorkers } from '../workers';
import {
  createTestEnv,
  eventually,
  forkedMembers,
  forkingPython,
  pendingActivities,
  repoRoot,
  tempDir,
  testWorkflowsPath,
  venvDir,
} from './helpers/temporal-harness';

const test = anyTest as TestFn<{ env: TestWorkflowEnvironment }>;
const HOST = 'testhost';

test.before(async (t) => {
  // Steps spawned, not forked by a warm server: the wrapper python's forked member must belong to the step's
  // group (test/fork-server.test.ts covers forked steps). In-process and spawned workers both read this.
  process.env.CSR_FORK_SERVER = '0';
  t.context = { env: await createTestEnv('ERROR') };
});
test.after.always(async (t) => {
  await t.context.env?.teardown();
});

/** A CSR_HOME of its own, whose venv python forks a group member before running the real Python. */
function sandbox(): { home: string; venv: string; membersFile: string; env: CsrEnv } {
  const dir = tempDir('csr-workers-');
  const venv = path.join(dir, 'venv');
  fs.mkdirSync(path.join(venv, 'bin'), { recursive: true });
  const { python, membersFile } = forkingPython(dir);
  fs.renameSync(python, path.join(venv, 'bin', 'python'));
  const home = path.join(dir, 'home');
  const env = csrEnv({ CSR_HOME: home, CSR_VENV: venv, TEMPORAL_ADDRESS: 'unused:1' });
  return { home, venv, membersFile, env };
}

const leaseTable = (env: CsrEnv) =>
  new GpuLeases({ runDir: env.runDir, hostId: HOST, owner: 'test-observer', log: () => undefined });

/** Start a long probe on the GPU queue; resolve with the pid its GPU lease records. */
async function startLongStep(
  t: { context: { env: TestWorkflowEnvironment } },
  env: CsrEnv,
  outDir: string,
  maximumAttempts = 3,
): Promise<{ handle: WorkflowHandle; pid: number }> {
  const handle = await t.context.env.client.workflow.start('runStep', {
    args: [
      { step: 'probe', spec: { out_dir: outDir, sleep_s: 300 }, expectManifest: false },
      { taskQueue: GPU_QUEUE, maximumAttempts, heartbeatTimeoutMs: 3000 },
    ],
    taskQueue: CPU_QUEUE,
    workflowId: `long-step-${Date.now()}`,
  });
  const observer = leaseTable(env);
  const pid = await eventually('the compute pid in the GPU lease', () => observer.read('0')?.pid ?? undefined);
  observer.close();
  return { handle, pid };
}

async function terminate(handle: WorkflowHandle): Promise<void> {
  await handle.terminate('test over').catch(() => undefined);
}

test.serial('in-process workers: probe, pinning, host queue, and shutdown kills the running step', async (t) => {
  const { env, membersFile } = sandbox();
  const lines: string[] = [];
  const running = await startWorkers({
    kind: ['cpu', 'gpu', 'host'],
    gpus: ['0'],
    hostId: HOST,
    env,
    connection: t.context.env.nativeConnection,
    namespace: 'default',
    workflowsPath: testWorkflowsPath,
    heartbeatEveryMs: 300,
    killGraceMs: 3000,
    log: (line) => lines.push(line),
  });
  let handle: WorkflowHandle | undefined;
  try {
    t.deepEqual(
      running.workers.map((w) => `${w.name} ${w.taskQueue}`),
      [`cpu ${CPU_QUEUE}`, `gpu-0 ${GPU_QUEUE}`, `host ${hostQueue(HOST)}`],
    );
    const gpuProbe = running.probes.find((probe) => probe.worker === 'gpu-0');
    t.is(gpuProbe?.cudaVisibleDevices, '0', 'the GPU worker pins its GPU for its children');
    t.regex(gpuProbe?.torch ?? '', /^\d+\.\d+/);
    t.true(
      lines.some((line) => /^gpu-0: GPU 0, torch \d/.test(line)),
      lines.join('\n'),
    );

    const queue = await t.context.env.client.workflow.execute('askHostQueue', {
      args: [GPU_QUEUE],
      taskQueue: CPU_QUEUE,
      workflowId: `ask-host-${Date.now()}`,
    });
    t.is(queue, hostQueue(HOST));

    const outDir = path.join(env.home, 'step');
    const step = await startLongStep(t, env, outDir);
    handle = step.handle;
    const member = await eventually('the forked member of the step', () => forkedMembers(membersFile).at(-1));
    t.true(processRunning(step.pid) && processRunning(member));
    await running.shutdown();
    t.false(processRunning(step.pid), 'the step leader died with the worker');
    t.false(processRunning(member), 'so did the rest of its group');
    t.false(fs.existsSync(leaseTable(env).leaseFile('0')), 'the GPU lease was released');
    t.regex(fs.readFileSync(path.join(outDir, 'logs', 'probe-attempt-1.log'), 'utf8'), /CUDA_VISIBLE_DEVICES="0"/);
  } finally {
    if (handle) await terminate(handle);
    await running.shutdown().catch(() => undefined);
  }
});

/** `workers/main.ts` in a process of its own, as `csr worker` runs it. */
async function spawnWorkerProcess(
  t: { context: { env: TestWorkflowEnvironment } },
  home: string,
  venv: string,
): Promise<{ child: ChildProcess; exited: Promise<number | null> }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(repoRoot, 'workers', 'main.ts'),
      '--kind',
      'gpu',
      '--gpus',
      '0',
      '--host-id',
      HOST,
      '--no-probe',
      '--heartbeat-ms',
      '300',
      '--kill-grace-ms',
      '3000',
    ],
    {
      cwd: repoRoot,
      env: { ...process.env, CSR_HOME: home, CSR_VENV: venv, TEMPORAL_ADDRESS: t.context.env.address },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await eventually(`the worker process to be ready (output so far: ${output})`, async () => {
    if (child.exitCode !== null) throw new Error(`worker process exited ${child.exitCode}: ${output}`);
    return output.includes('workers ready') ? true : undefined;
  });
  return { child, exited };
}

test.serial('SIGTERM to a worker process: it stops, and its running step dies with it', async (t) => {
  const { home, venv, env, membersFile } = sandbox();
  const cpu = await startWorkers({
    kind: 'cpu',
    env,
    connectionOptions: { address: t.context.env.address },
    workflowsPath: testWorkflowsPath,
    probe: false,
    log: () => undefined,
  });
  const { child, exited } = await spawnWorkerProcess(t, home, venv);
  let handle: WorkflowHandle | undefined;
  try {
    const step = await startLongStep(t, env, path.join(home, 'step'));
    handle = step.handle;
    const member = await eventually('the forked member of the step', () => forkedMembers(membersFile).at(-1));
    t.true(processRunning(step.pid) && processRunning(member));
    child.kill('SIGTERM');
    t.is(await exited, 0);
    t.false(processRunning(step.pid));
    t.false(processRunning(member));
    t.false(fs.existsSync(leaseTable(env).leaseFile('0')), 'the GPU lease was released');
  } finally {
    child.kill('SIGKILL');
    if (handle) await terminate(handle);
    await cpu.shutdown();
  }
});

test.serial(
  'a worker killed with SIGKILL leaves its step running; the next start kills it and reaps the lease',
  async (t) => {
    const { home, venv, env, membersFile } = sandbox();
    const cpu = await startWorkers({
      kind: 'cpu',
      env,
      connectionOptions: { address: t.context.env.address },
      workflowsPath: testWorkflowsPath,
      probe: false,
      log: () => undefined,
    });
    const { child, exited } = await spawnWorkerProcess(t, home, venv);
    let handle: WorkflowHandle | undefined;
    try {
      // One attempt only, so nothing retries the step onto the restarted worker and muddles the lease.
      const step = await startLongStep(t, env, path.join(home, 'step'), 1);
      handle = step.handle;
      const member = await eventually('the forked member of the step', () => forkedMembers(membersFile).at(-1));
      child.kill('SIGKILL');
      await exited;
      await new Promise((resolve) => setTimeout(resolve, 500));
      t.true(processRunning(member), 'a SIGKILLed worker cannot clean up: its step group survives');
      const stale = leaseTable(env).read('0');
      t.is(stale?.pid, step.pid);

      const lines: string[] = [];
      const restarted = await startWorkers({
        kind: 'gpu',
        gpus: ['0'],
        hostId: HOST,
        env,
        connectionOptions: { address: t.context.env.address },
        probe: false,
        killGraceMs: 3000,
        log: (line) => lines.push(line),
      });
      try {
        t.false(processRunning(member), 'the restart killed the group the dead worker left');
        t.not(leaseTable(env).read('0')?.token, stale?.token, 'the stale lease is gone');
        t.true(
          lines.some((line) => line.includes(`killed process group ${step.pid}`)),
          lines.join('\n'),
        );
      } finally {
        await restarted.shutdown();
      }
    } finally {
      if (handle) await terminate(handle);
      await cpu.shutdown();
    }
  },
);

test.serial('a multi-GPU step on the host queue waits for a single-GPU step on one of its GPUs', async (t) => {
  const { env } = sandbox();
  const running = await startWorkers({
    kind: ['cpu', 'gpu', 'host'],
    gpus: ['0', '1'],
    hostId: HOST,
    env,
    // gpu-0 takes the shared connection; gpu-1 polls the same queue and must open its own.
    connection: t.context.env.nativeConnection,
    connectionOptions: { address: t.context.env.address },
    workflowsPath: testWorkflowsPath,
    heartbeatEveryMs: 200,
    probe: false,
    log: () => undefined,
  });
  const client = t.context.env.client;
  try {
    const single = await client.workflow.start('runStep', {
      args: [
        { step: 'probe', spec: { out_dir: path.join(env.home, 'single'), sleep_s: 5 }, expectManifest: false },
        { taskQueue: GPU_QUEUE, maximumAttempts: 1, heartbeatTimeoutMs: 5000 },
      ],
      taskQueue: CPU_QUEUE,
      workflowId: `single-${Date.now()}`,
    });
    const observer = leaseTable(env);
    const singleGpu = await eventually('the single-GPU step to hold a lease', () =>
      ['0', '1'].find((id) => observer.read(id)?.pid),
    );
    const multiOut = path.join(env.home, 'multi');
    const multi = await client.workflow.start('runStep', {
      args: [
        { step: 'probe', spec: { out_dir: multiOut }, expectManifest: false, gpuCount: 2 },
        { taskQueue: hostQueue(HOST), maximumAttempts: 1, heartbeatTimeoutMs: 5000 },
      ],
      taskQueue: CPU_QUEUE,
      workflowId: `multi-${Date.now()}`,
    });
    const waiting = await eventually('the multi-GPU step to wait for its GPUs', async () => {
      const details = (await pendingActivities(multi))[0]?.details as StepHeartbeat | undefined;
      return details?.phase === 'waiting-for-gpu' ? details : undefined;
    });
    t.deepEqual(waiting.gpus, ['0', '1']);
    t.truthy(observer.read(singleGpu)?.pid, 'the single-GPU step still holds its GPU meanwhile');
    t.false(fs.existsSync(path.join(multiOut, 'logs')), 'and the multi-GPU step has not started');
    observer.close();

    await single.result();
    const multiResult = await multi.result();
    t.false(multiResult.skipped);
    const log = fs.readFileSync(path.join(multiOut, 'logs', 'probe-attempt-1.log'), 'utf8');
    t.regex(log, /CUDA_VISIBLE_DEVICES="0,1"/);
  } finally {
    await running.shutdown();
  }
});
