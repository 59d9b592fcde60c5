/**
 * Faults met by the compute-step activity on a real Temporal dev server with real Python children:
 * a full disk (the kernel's own ENOSPC, from /dev/full) and two writers of one step folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, type ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../activities';
import { runComputeProcess } from '../activities/compute-process';
import { NO_SPACE_FAILURE } from '../activities/disk-errors';
import { STALLED_FAILURE } from '../activities/stall-watchdog';
import type { StepHeartbeat } from '../activities';
import {
  createTestEnv,
  eventually,
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
  const [env, bundle] = await Promise.all([createTestEnv('ERROR'), bundleWorkflowCode({ workflowsPath: testWorkflowsPath })]);
  t.context = { env, bundle };
});

test.after.always(async (t) => {
  await t.context.env?.teardown();
});

let queues = 0;

async function makeWorker(t: { context: Context }, python = venvPython) {
  const taskQueue = `step-faults-${++queues}`;
  const worker = await Worker.create({
    connection: t.context.env.nativeConnection,
    taskQueue,
    workflowBundle: t.context.bundle,
    activities: createActivities({
      env: { python, venv: path.dirname(path.dirname(venvPython)) },
      gpus: [],
      workerId: `test-${taskQueue}`,
      hostQueue: 'csr-host-test',
      heartbeatEveryMs: 200,
      killGraceMs: 2000,
    }),
    // Let every heartbeat reach the server so describe() shows the latest one.
    maxHeartbeatThrottleInterval: '100ms',
    shutdownGraceTime: 0,
  });
  return { worker, taskQueue };
}

const options = (taskQueue: string, maximumAttempts = 1): RunStepOptions => ({ taskQueue, maximumAttempts, heartbeatTimeoutMs: 10_000 });

function runStep(
  t: { context: Context },
  outDir: string,
  spec: Record<string, unknown>,
  opts: RunStepOptions,
  stallTimeoutMs?: number,
) {
  return t.context.env.client.workflow.start('runStep', {
    args: [{ step: 'probe', spec: { out_dir: outDir, ...spec }, expectManifest: false, stallTimeoutMs }, opts],
    taskQueue: opts.taskQueue,
    workflowId: `faults-${opts.taskQueue}-${Date.now()}-${Math.random().toString(36).slice(2)}`,
  });
}

function causeOf(error: WorkflowFailedError | undefined): ApplicationFailure {
  const activity = error?.cause;
  if (!(activity instanceof ActivityFailure)) throw new Error(`expected an activity failure, got ${String(activity)}`);
  return activity.cause as ApplicationFailure;
}

test.serial('a log line the disk cannot take ends the step with ENOSPC, not the worker process', async (t) => {
  const dir = tempDir();
  // A "python" that prints one line that is not an event: the activity appends it to the log, which is /dev/full.
  const python = path.join(dir, 'chatty-python');
  fs.writeFileSync(python, `#!/bin/sh\necho 'a stray line on stdout'\nexec ${JSON.stringify(venvPython)} "$@"\n`, { mode: 0o755 });
  const specFile = path.join(dir, 'spec.json');
  fs.writeFileSync(specFile, JSON.stringify({ out_dir: path.join(dir, 'out'), sleep_s: 60 }));
  const started = Date.now();
  const error = await t.throwsAsync(
    runComputeProcess({ python, step: 'probe', specFile, logFile: '/dev/full', env: process.env, killGraceMs: 2000 }),
  );
  t.is((error as NodeJS.ErrnoException).code, 'ENOSPC');
  t.regex(error?.message ?? '', /ENOSPC/);
  t.true(Date.now() - started < 50_000, 'the step was stopped, not left to run its 60 s');
});

test.serial('a full disk under the step folder fails the step retryably naming ENOSPC; the worker goes on', async (t) => {
  const outDir = tempDir();
  fs.mkdirSync(path.join(outDir, 'logs'));
  // The kernel answers every write to /dev/full with ENOSPC: attempt 1's log sits on a "full disk".
  fs.symlinkSync('/dev/full', path.join(outDir, 'logs', 'probe-attempt-1.log'));
  const { worker, taskQueue } = await makeWorker(t);
  await worker.runUntil(async () => {
    const failed = await runStep(t, outDir, {}, options(taskQueue));
    const cause = causeOf(await t.throwsAsync(failed.result(), { instanceOf: WorkflowFailedError }));
    t.is(cause.type, NO_SPACE_FAILURE);
    t.false(cause.nonRetryable);
    t.true(cause.message.startsWith(`probe: ENOSPC writing under ${outDir} (`), cause.message);
    // Same worker, space "freed" (attempt 2 writes a normal file): the retry completes.
    const retried = await runStep(t, outDir, {}, options(taskQueue, 2));
    t.is((await retried.result()).attempt, 2);
  });
});

test.serial('a step that meets a full disk itself fails retryably as ComputeNoSpace naming ENOSPC', async (t) => {
  const outDir = tempDir();
  const { worker, taskQueue } = await makeWorker(t);
  await worker.runUntil(async () => {
    // The probe appends a line to /dev/full, whose every write the kernel answers with ENOSPC.
    const handle = await runStep(t, outDir, { write_file: '/dev/full' }, options(taskQueue));
    const cause = causeOf(await t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError }));
    t.is(cause.type, NO_SPACE_FAILURE);
    t.false(cause.nonRetryable);
    t.regex(cause.message, /^probe exited with code 75: ENOSPC: No space left on device; free space and the step is retried/);
  });
});

test.serial('a second attempt on a step folder in use waits, outside the retry budget, and runs once it is free', async (t) => {
  const outDir = tempDir();
  const { worker, taskQueue } = await makeWorker(t);
  await worker.runUntil(async () => {
    const first = await runStep(t, outDir, { sleep_s: 60 }, options(taskQueue));
    // The lock file appears once the first child holds the folder.
    for (let i = 0; i < 600 && !fs.existsSync(path.join(outDir, '.step.lock')); i++) await new Promise((r) => setTimeout(r, 100));
    const second = await runStep(t, outDir, {}, options(taskQueue));
    const waiting = await eventually('the second attempt waiting for the folder', async () => {
      const [pending] = await pendingActivities(second);
      const details = pending?.details as StepHeartbeat | undefined;
      return details?.phase === 'waiting-for-folder' ? pending : undefined;
    });
    t.is(waiting.attempt, 1);
    await first.cancel();
    const result = await second.result();
    t.is(result.attempt, 1, 'the wait used no retry attempt');
  });
});

test.serial('a step silent for longer than the stall timeout is killed and fails retryably', async (t) => {
  const dir = tempDir();
  // A step that hangs before printing anything (as a stuck collective or a dead NFS read would).
  const python = path.join(dir, 'hung-python');
  const pidFile = path.join(dir, 'hung.pid');
  fs.writeFileSync(python, `#!/bin/sh\necho $$ > ${JSON.stringify(pidFile)}\nsleep 300\n`, { mode: 0o755 });
  const { worker, taskQueue } = await makeWorker(t, python);
  await worker.runUntil(async () => {
    const started = Date.now();
    const handle = await runStep(t, path.join(dir, 'out'), {}, options(taskQueue), 1500);
    const cause = causeOf(await t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError }));
    t.is(cause.type, STALLED_FAILURE);
    t.false(cause.nonRetryable);
    t.regex(cause.message, /no progress for \d+ s \(activities.stall_timeout is 2 s\); the step was killed/);
    t.true(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'the hung child is gone');
  });
});

test.serial('a step that keeps reporting progress outlives the stall timeout', async (t) => {
  const dir = tempDir();
  // Progress every 0.5 s for 10 s, then the real probe: longer in all than the 8 s stall timeout.
  const python = path.join(dir, 'busy-python');
  const line = JSON.stringify({ event: 'progress', step: 'probe', done: 0, total: 1 });
  fs.writeFileSync(
    python,
    `#!/bin/sh\nfor i in $(seq 20); do echo '${line}'; sleep 0.5; done\nexec ${JSON.stringify(venvPython)} "$@"\n`,
    { mode: 0o755 },
  );
  const { worker, taskQueue } = await makeWorker(t, python);
  await worker.runUntil(async () => {
    const handle = await runStep(t, path.join(dir, 'out'), {}, options(taskQueue), 8000);
    const result = await handle.result();
    t.is(result.attempt, 1);
    t.true(result.wallSeconds >= 10);
  });
});
