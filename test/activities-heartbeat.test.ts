/**
 * Heartbeat timer and cancellation of the compute-step activity, in the SDK's MockActivityEnvironment
 * (no server) with a real Python child.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { type StepHeartbeat, type StepResult, createRunComputeStep } from '../activities';
import { processRunning } from '../src/gpu/process-groups';
import { eventually, forkedMembers, forkingPython, tempDir, venvPython } from './helpers/temporal-harness';

const deps = (python = venvPython) => ({
  env: { python, venv: path.dirname(path.dirname(venvPython)) },
  gpus: [],
  workerId: 'mock',
  heartbeatEveryMs: 100,
  killGraceMs: 2000,
});

test('the heartbeat timer beats while the child prints nothing (importing torch)', async (t) => {
  const env = new MockActivityEnvironment({ attempt: 3 });
  const beats: StepHeartbeat[] = [];
  env.on('heartbeat', (details: StepHeartbeat) => beats.push(details));
  const outDir = tempDir();
  const result: StepResult = await env.run(createRunComputeStep(deps()), {
    step: 'probe',
    spec: { out_dir: outDir, sleep_s: 0.5 },
    expectManifest: false,
  });
  t.is(result.attempt, 3);
  // Before the first progress event (done still null) the child only imports torch: only the timer beats then.
  const silent = beats.filter((beat) => beat.phase === 'running' && beat.done === null && beat.pid !== null);
  t.true(silent.length >= 3, `${silent.length} timer heartbeats before any progress`);
  t.true(
    beats.some((beat) => beat.done === beat.total && beat.total !== null),
    'the last progress was reported',
  );
  t.true(beats.every((beat) => beat.attempt === 3 && beat.step === 'probe'));
});

test('cancellation kills the group, waits for it, and rethrows the CancelledFailure', async (t) => {
  const dir = tempDir();
  const { python, membersFile } = forkingPython(dir);
  const env = new MockActivityEnvironment();
  let pid: number | null = null;
  env.on('heartbeat', (details: StepHeartbeat) => (pid ??= details.pid));
  const running = env.run(createRunComputeStep(deps(python)), {
    step: 'probe',
    spec: { out_dir: path.join(dir, 'out'), sleep_s: 120 },
    expectManifest: false,
  });
  const member = await eventually('the forked member', () => forkedMembers(membersFile)[0]);
  const leader = await eventually('the child pid', () => pid ?? undefined);
  t.true(processRunning(leader) && processRunning(member));
  env.cancel('CANCELLED');
  await t.throwsAsync(running, { instanceOf: CancelledFailure });
  t.false(processRunning(leader));
  t.false(processRunning(member));
});

test('a cancelled step that ignores SIGTERM is killed after the grace period', async (t) => {
  const dir = tempDir();
  const env = new MockActivityEnvironment();
  let pid: number | null = null;
  env.on('heartbeat', (details: StepHeartbeat) => (pid ??= details.pid));
  // A python that ignores SIGTERM, as a step stuck in a CUDA call would.
  const stubborn = path.join(dir, 'stubborn-python');
  const ignoreTerm = 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)';
  fs.writeFileSync(stubborn, `#!/bin/sh\nexec ${JSON.stringify(venvPython)} -c '${ignoreTerm}'\n`, { mode: 0o755 });
  const running = env.run(createRunComputeStep({ ...deps(stubborn), killGraceMs: 500 }), {
    step: 'probe',
    spec: { out_dir: path.join(dir, 'out') },
    expectManifest: false,
  });
  const leader = await eventually('the child pid', () => pid ?? undefined);
  // Cancel only once the child really ignores SIGTERM (bit 15 of SigIgn), however slow Python starts.
  const sigIgn = () =>
    BigInt(`0x${/SigIgn:\s*([0-9a-f]+)/.exec(fs.readFileSync(`/proc/${leader}/status`, 'utf8'))?.[1]}`);
  await eventually('SIGTERM ignored', () => ((sigIgn() >> 14n) & 1n ? true : undefined));
  const cancelledAt = Date.now();
  env.cancel('CANCELLED');
  await t.throwsAsync(running, { instanceOf: CancelledFailure });
  t.true(Date.now() - cancelledAt >= 500, 'SIGTERM was given its grace period');
  t.false(processRunning(leader));
});
