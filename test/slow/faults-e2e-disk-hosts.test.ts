/**
 * Faults end to end, part two: three cases of issue 11 that need more than a SIGKILL, each one small
 * CSR run on the toy world on the embedded stack started by its own code (`stackUp`, free ports, a
 * temporary CSR_HOME), with real compute:
 * - a SIGKILL while DPO is writing a checkpoint: the half-saved checkpoint is skipped and DPO resumes
 *   from the last complete one;
 * - a full disk on a real size-limited filesystem: the workers run in a mount namespace with a tmpfs
 *   over `$CSR_HOME/artifacts`, which the test fills during generate;
 * - two hosts on one CSR_HOME: two GPU workers, each with its own host name and pid space (UTS + PID
 *   namespaces), run one run together; one is SIGKILLed mid-generate and started again, the other is
 *   frozen mid-DPO (a network cut) so that its step's retry on the other host meets the step lock.
 * Namespaces come from util-linux `unshare` (unprivileged user namespaces; no root needed). The
 * figures of each case are printed.
 *
 * Run with `npm run test:faults:e2e` (minutes; not part of `npm test`).
 */
import anyTest, { type TestFn } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { loadConfig, type CsrConfig } from '../../src/config';
import { connectClient } from '../../src/client/temporal';
import { quickQuery } from '../../src/client/progress';
import type { IterationSummary, RunStatus } from '../../src/shared/run-types';
import { processIdentity, isSameProcess } from '../../src/gpu/process-identity';
import { startDetached, stopPidFile } from '../../app/stack/process-group';
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
  processTree,
  readManifest,
  repoRoot,
  running,
  sha256,
  startFaultStack,
  waitFor,
} from '../helpers/fault-stack';
import { type NamespacedWorker, namespacesUnavailable, startNamespacedWorker } from '../helpers/namespaced-worker';

interface Context {
  stack: FaultStack;
}

const test = anyTest as TestFn<Context>;
const fixture = path.join(repoRoot, 'test', 'fixtures', 'tiny-toy.yaml');

/** The tiny-toy run of faults-e2e.test.ts: 12 prompts, small evaluations, a 10 s heartbeat timeout. */
function smallRun(name: string, shards: number): CsrConfig {
  const config = loadConfig(fixture);
  config.name = name;
  config.prompts.limit = 12;
  config.workers.gpu_shards = shards;
  config.dpo.checkpoint_every = 2;
  config.evaluate.batch_size = 2;
  config.evaluate.benchmarks = [
    { ...config.evaluate.benchmarks[0]!, limit: 8 },
    { ...config.evaluate.benchmarks[1]!, limit: 4 },
  ];
  config.activities.heartbeat_timeout = '10s';
  config.activities.heartbeat_every = '1s';
  return config;
}

const seconds = (fromMs: number) => Math.round((Date.now() - fromMs) / 100) / 10;
const iterDir = (runDir: string, iteration: number) => path.join(runDir, `iter-${String(iteration).padStart(2, '0')}`);

/** The folders of `step` in `iteration` (shards, benchmarks; DPO has one). */
function folders(runDir: string, iteration: number, step: string): string[] {
  const base = path.join(iterDir(runDir, iteration), step);
  if (step === 'dpo') return [base];
  return fs.existsSync(base) ? fs.readdirSync(base).map((d) => path.join(base, d)) : [];
}

/** A folder of `step` that has `minItems` records and no manifest yet; an error once all `count` finished. */
function halfWay(runDir: string, iteration: number, step: string, minItems: number, count: number): string | undefined {
  let finished = 0;
  for (const dir of folders(runDir, iteration, step)) {
    if (fs.existsSync(path.join(dir, 'manifest.json'))) finished++;
    else if (completeLines(path.join(dir, ITEM_FILES[step]!.file)) >= minItems) return dir;
  }
  if (finished >= count) throw new Error(`every ${step} of iteration ${iteration} finished before ${minItems} items were seen half-way`);
  return undefined;
}

/** Every attempt log of a step folder, oldest first: `{ attempt, worker, text }` (worker from the header line). */
function attemptLogs(dir: string): { attempt: number; worker: string; text: string }[] {
  const logs = path.join(dir, 'logs');
  if (!fs.existsSync(logs)) return [];
  return fs
    .readdirSync(logs)
    .map((name) => ({ name, attempt: Number(/-attempt-(\d+)\.log$/.exec(name)?.[1] ?? NaN) }))
    .filter((l) => Number.isFinite(l.attempt))
    .sort((a, b) => a.attempt - b.attempt)
    .map(({ name, attempt }) => {
      const text = fs.readFileSync(path.join(logs, name), 'utf8');
      return { attempt, worker: / attempt \d+ on (\S+) /.exec(text)?.[1] ?? '?', text };
    });
}

/** The host id in a worker id `<name>@<host>/<pid>`. */
const hostOf = (worker: string) => /@([^/]+)\//.exec(worker)?.[1] ?? '?';

/** The failures of the run's pending activities (its current iteration's too), as Temporal holds them. */
async function pendingFailures(
  client: Awaited<ReturnType<typeof connectClient>>,
  workflowId: string,
): Promise<{ activityId: string; attempt: number; message: string; type?: string; nonRetryable?: boolean }[]> {
  const status = await quickQuery<RunStatus>(client, workflowId, 'runStatus');
  const ids = [workflowId, ...(status?.currentChildId ? [status.currentChildId] : [])];
  const found = [];
  for (const id of ids) {
    const pending = (await client.workflow.getHandle(id).describe().catch(() => undefined))?.raw.pendingActivities ?? [];
    for (const activity of pending) {
      const failure = activity.lastFailure;
      if (!failure?.message) continue;
      found.push({
        activityId: activity.activityId ?? '?',
        attempt: activity.attempt ?? 0,
        message: failure.message,
        type: failure.applicationFailureInfo?.type ?? undefined,
        nonRetryable: failure.applicationFailureInfo?.nonRetryable ?? undefined,
      });
    }
  }
  return found;
}

/** The workflow's result, and the run terminated if the test ended without one (its workers are going away). */
async function endRun(handle: WorkflowHandle): Promise<void> {
  const described = await handle.describe().catch(() => undefined);
  if (described?.status.name === 'RUNNING') await handle.terminate('fault test ended').catch(() => undefined);
}

/** Stop the workers `stackUp` started (the CPU worker and the GPU stand-in), so a test can start its own. */
async function stopStackWorkers(stack: FaultStack): Promise<void> {
  for (const name of ['cpu', 'gpu-standins']) await stopPidFile(path.join(stack.env.runDir, `worker-${name}.pid`), 30_000);
}

/** The step process (the leader of its own group) of `step` under `root`, found by its command line. */
function stepProcess(root: number, step: string): number | undefined {
  return processTree(root).find((pid) => {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      return argv.includes(`csr_compute ${step} --spec`);
    } catch {
      return false;
    }
  });
}

test.before(async (t) => {
  t.context.stack = await startFaultStack();
});

test.after.always(async (t) => {
  await t.context.stack?.close();
});

test.serial('SIGKILL while DPO writes a checkpoint: the half-saved one is skipped, DPO resumes from the last complete one', async (t) => {
  const { stack } = t.context;
  await stack.up(); // the stack's own CPU worker and GPU stand-in
  const config = smallRun('faults-e2e-checkpoint', 1);
  config.dpo.batch_size = 1; // ~12 optimizer steps: checkpoints at 2, 4, ..., a few saves to catch
  const input = newRunInput(config, fixture);
  const runDir = path.join(stack.env.artifactsDir, input.runKey);
  const dpoDir = path.join(iterDir(runDir, 1), 'dpo');
  const checkpoints = path.join(dpoDir, 'checkpoints');
  const client = await connectClient(stack.env);
  const handle = client.workflow.getHandle(await startRun(input));
  try {
    const every = config.dpo.checkpoint_every;
    // The first complete checkpoint: later ones have a whole one to fall back on.
    await waitFor(
      'the first complete DPO checkpoint',
      () => {
        if (fs.existsSync(path.join(dpoDir, 'manifest.json'))) throw new Error('DPO finished before its first checkpoint was seen');
        return fs.existsSync(path.join(checkpoints, `checkpoint-${every}`, 'trainer_state.json')) ? true : undefined;
      },
      900_000,
      50,
    );
    const worker = gpuWorkerPid(stack.env);
    const step = stepProcess(worker, 'dpo');
    if (step === undefined) throw new Error(`no DPO step process under worker ${worker}`);
    // The Trainer saves a checkpoint as the model's files, then optimizer.pt, scheduler and RNG state,
    // and trainer_state.json last. When a checkpoint folder appears the step is frozen (SIGSTOP) while a
    // watch is put on the folder, and frozen again the moment optimizer.pt is created: the weights are on
    // disk, the optimizer is being written, no state yet. Then the worker is SIGKILLed. Where the watch
    // comes too late (the state file is there), the step goes on (SIGCONT) and the next save is tried.
    let tries = 0;
    const caught = await new Promise<{ step: number; files: string[] }>((resolve, reject) => {
      const seen = new Set<string>([`checkpoint-${every}`]);
      const watchers: fs.FSWatcher[] = [];
      const done = () => {
        clearInterval(finished);
        for (const w of watchers) w.close();
      };
      const listing = (folder: string) =>
        fs
          .readdirSync(folder)
          .sort()
          .map((name) => `${name} ${fs.statSync(path.join(folder, name)).size} B`);
      watchers.push(
        fs.watch(checkpoints, (_event, name) => {
          const match = /^checkpoint-(\d+)$/.exec(String(name ?? ''));
          if (!match || seen.has(match[0])) return;
          const folder = path.join(checkpoints, match[0]);
          if (!fs.existsSync(folder)) return; // removed by rotation
          seen.add(match[0]);
          process.kill(-step, 'SIGSTOP');
          tries++;
          watchers.push(
            fs.watch(folder, (_e, file) => {
              if (file !== 'optimizer.pt') return;
              process.kill(-step, 'SIGSTOP');
              if (fs.existsSync(path.join(folder, 'trainer_state.json'))) {
                process.kill(-step, 'SIGCONT');
                return;
              }
              done();
              resolve({ step: Number(match[1]), files: listing(folder) });
            }),
          );
          process.kill(-step, 'SIGCONT');
        }),
      );
      const finished = setInterval(() => {
        if (!fs.existsSync(path.join(dpoDir, 'manifest.json'))) return;
        done();
        reject(new Error(`DPO finished; none of its ${tries} checkpoint saves after the first was caught half-way`));
      }, 200);
    });
    const killedAt = Date.now();
    await killTree(worker); // the frozen step dies with the worker's other groups
    const stepsAtKill = Math.max(0, ...dpoStepsLogged(dpoDir));
    t.false(fs.existsSync(path.join(checkpoints, `checkpoint-${caught.step}`, 'trainer_state.json')), 'the checkpoint was half-saved at the kill');
    t.true(caught.files.some((f) => f.startsWith('adapter_model.safetensors')), `the model's files were written: ${caught.files.join(', ')}`);
    t.true(fs.existsSync(path.join(checkpoints, `checkpoint-${caught.step - every}`, 'trainer_state.json')), 'the previous checkpoint was whole');
    await stack.up();
    const upSeconds = seconds(killedAt);
    await waitFor('DPO to run again', () => (attemptsStarted(dpoDir, 'dpo') > 1 ? true : undefined), 300_000);
    const recoverySeconds = seconds(killedAt);

    const history = (await handle.result()) as IterationSummary[];
    t.deepEqual(
      history.map((h) => h.iteration),
      [0, 1],
      'the run completed both iterations',
    );
    checkArtifacts(t, runDir);
    const manifest = readManifest(dpoDir)!;
    const redone = stepsAtKill - manifest.items_reused;
    t.is(manifest.items_reused, caught.step - every, `DPO resumed from checkpoint-${caught.step - every}: ${JSON.stringify(manifest)}`);
    t.true(redone <= every, `DPO redid ${redone} optimizer steps (checkpoint every ${every})`);
    const retries = attemptLogs(dpoDir).filter((l) => l.attempt > 1);
    t.true(
      retries.some((l) => l.text.includes(`checkpoint-${caught.step}: half-saved checkpoint skipped and removed`)),
      `a retry said it skipped the half-saved checkpoint-${caught.step}:\n${retries.map((l) => l.text).join('\n')}`,
    );
    // What is left is whole: every checkpoint folder has its state file.
    for (const name of fs.readdirSync(checkpoints).filter((n) => n.startsWith('checkpoint-'))) {
      t.true(fs.existsSync(path.join(checkpoints, name, 'trainer_state.json')), `${name} is whole`);
    }
    const line =
      `DPO checkpoint kill: ${stepsAtKill} optimizer steps logged, checkpoint-${caught.step} half-saved at the kill ` +
      `(files: ${caught.files.join(', ')}; caught at save ${tries} after the first), resumed from step ${manifest.items_reused}, ` +
      `redone ${redone} step(s) of ${manifest.items_total}; up again ${upSeconds.toFixed(1)} s, DPO running again ${recoverySeconds.toFixed(1)} s`;
    t.log(line);
    console.log(line);
  } finally {
    await endRun(handle);
    await client.connection.close();
  }
});

test.serial('full disk on a real 64 MiB tmpfs: the worker lives, the step fails retryably naming ENOSPC and the file, the run completes once space is freed', async (t) => {
  const { stack } = t.context;
  const unavailable = namespacesUnavailable();
  if (unavailable) {
    t.fail(`no size-limited filesystem can be mounted here: ${unavailable}`);
    return;
  }
  await stopStackWorkers(stack);
  const size = '64m';
  // Every worker that writes artifacts sees the small filesystem: the CPU worker (curate, run set-up) and
  // the GPU stand-in in one process, in one mount namespace. Temporal and MLflow stay outside.
  const worker = startNamespacedWorker({
    env: stack.env,
    name: 'full-disk',
    args: ['worker', '--cpu', '--stand-ins', '1'],
    tmpfs: { dir: stack.env.artifactsDir, size },
  });
  const client = await connectClient(stack.env);
  let handle: WorkflowHandle | undefined;
  try {
    await worker.ready();
    const identity = processIdentity(worker.pid)!;
    const artifacts = worker.seen(stack.env.artifactsDir);
    const fsInfo = fs.statfsSync(artifacts);
    t.is(fsInfo.type, 0x01021994, 'the artifacts folder the worker sees is a tmpfs');
    t.is(fsInfo.blocks * fsInfo.bsize, 64 * 1024 * 1024, 'of 64 MiB');
    t.not(fs.statSync(artifacts).dev, fs.statSync(stack.env.artifactsDir).dev, 'seen by the worker only');

    const config = smallRun('faults-e2e-disk', 1);
    // While the disk is full every attempt fails at once: enough of them to last until space is freed.
    config.activities.retry = { maximum_attempts: 30, initial_interval: '1s', backoff_coefficient: 2, maximum_interval: '2s' };
    const input = newRunInput(config, fixture);
    const runDir = path.join(artifacts, input.runKey);
    const workflowId = await startRun(input);
    handle = client.workflow.getHandle(workflowId);

    const shard = await waitFor('generate of iteration 1 half-way', () => halfWay(runDir, 1, 'generate', 1, 1), 900_000, 50);
    // Fill the filesystem from outside, through the worker's view of it.
    const filler = path.join(artifacts, 'filler.bin');
    const fd = fs.openSync(filler, 'w');
    const chunk = Buffer.alloc(1024 * 1024, 0x5a);
    let filled = 0;
    try {
      for (;;) filled += fs.writeSync(fd, chunk);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    } finally {
      fs.closeSync(fd);
    }
    const filledAt = Date.now();
    const itemsAtFill = completeLines(path.join(shard, 'trees.jsonl'));
    const freeAtFill = fs.statfsSync(artifacts).bavail * fsInfo.bsize;

    // The step fails for the full disk, retryably, as Temporal records it; the worker process lives on.
    const failures = new Map<string, Awaited<ReturnType<typeof pendingFailures>>[number]>();
    await waitFor(
      'two failed attempts of generate',
      async () => {
        for (const failure of await pendingFailures(client, workflowId)) failures.set(`${failure.activityId}#${failure.attempt}`, failure);
        if (!isSameProcess(identity)) throw new Error(`the worker process died on the full disk:\n${worker.log()}`);
        if (fs.existsSync(path.join(shard, 'manifest.json'))) throw new Error('generate finished on a full disk');
        return failures.size >= 2 ? true : undefined;
      },
      180_000,
      250,
    );
    const firstFailureSeconds = seconds(filledAt);
    t.true(isSameProcess(identity), 'the worker process survived the full disk');
    const shardName = path.relative(artifacts, shard);
    for (const failure of failures.values()) {
      t.regex(failure.message, /ENOSPC/, `the failure names ENOSPC: ${failure.message}`);
      t.true(failure.message.includes(shardName), `the failure names the file or folder (${shardName}): ${failure.message}`);
      t.is(failure.type, 'ComputeNoSpace', failure.message);
      t.not(failure.nonRetryable, true, `retryable: ${failure.message}`);
    }
    t.true(
      [...failures.values()].some((f) => f.message.includes(path.join(shardName, 'trees.jsonl'))),
      `a failure names the per-item file being appended: ${[...failures.values()].map((f) => f.message).join('\n')}`,
    );

    fs.rmSync(filler);
    const freedAt = Date.now();
    await waitFor('generate to finish', () => (fs.existsSync(path.join(shard, 'manifest.json')) ? true : undefined), 300_000);
    const doneSeconds = seconds(freedAt);
    const history = (await handle.result()) as IterationSummary[];
    t.deepEqual(
      history.map((h) => h.iteration),
      [0, 1],
      'the run completed both iterations',
    );
    t.true(isSameProcess(identity), 'the same worker process ran the whole run');
    checkArtifacts(t, runDir);
    const manifest = readManifest(shard)!;
    t.true(manifest.items_reused >= itemsAtFill, `generate kept the ${itemsAtFill} trees on disk at the fill: ${JSON.stringify(manifest)}`);
    const used = fs.statfsSync(artifacts);
    const line =
      `full disk: tmpfs ${size} over ${stack.env.artifactsDir}, filler ${(filled / 2 ** 20).toFixed(1)} MiB ` +
      `(${freeAtFill} bytes left) with ${itemsAtFill} of 12 trees on disk; ${failures.size} failed attempts seen, ` +
      `the first ${firstFailureSeconds.toFixed(1)} s after the fill ("${[...failures.values()][0]!.message.split('\n')[0]}"); ` +
      `freed: generate done ${doneSeconds.toFixed(1)} s later, ${manifest.items_reused} trees reused, ${manifest.items_computed} computed; ` +
      `run artifacts ${(((used.blocks - used.bfree) * used.bsize) / 2 ** 20).toFixed(1)} MiB at the end`;
    t.log(line);
    console.log(line);
  } finally {
    if (handle) await endRun(handle);
    await client.connection.close();
    await worker.stop();
  }
});

/** Lease files of run/, sampled: every record seen, and whether both hosts held their GPU 0 at once. */
class LeaseWatch {
  readonly records = new Map<string, { file: string; host: string; owner: string; token: string }>();
  bothAtOnce = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly runDir: string,
    hosts: readonly string[],
  ) {
    this.timer = setInterval(() => {
      const held = new Set<string>();
      for (const file of fs.readdirSync(this.runDir).filter((f) => /^gpu-.*\.lease$/.test(f))) {
        try {
          const record = JSON.parse(fs.readFileSync(path.join(this.runDir, file), 'utf8')) as { host: string; owner: string; token: string };
          this.records.set(record.token, { file, host: record.host, owner: record.owner, token: record.token });
          held.add(record.host);
        } catch {
          // released meanwhile
        }
      }
      if (hosts.every((host) => held.has(host))) this.bothAtOnce = true;
    }, 100);
  }

  /** The token of the lease file of `host`'s GPU 0 now, if held. */
  token(host: string): string | undefined {
    try {
      return (JSON.parse(fs.readFileSync(path.join(this.runDir, `gpu-${host}-0.lease`), 'utf8')) as { token: string }).token;
    } catch {
      return undefined;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

test.serial('two hosts on one CSR_HOME run one run: leases, reaping and step locks stay per host, nothing written twice', async (t) => {
  const { stack } = t.context;
  const unavailable = namespacesUnavailable();
  if (unavailable) {
    t.fail(`no second host can be simulated here: ${unavailable}`);
    return;
  }
  const env = stack.env;
  await stopStackWorkers(stack);
  // The CPU worker as `csr up` starts it; two GPU hosts, each `csr worker --gpus 0` with its own host
  // name (its default host id) and pid space, sharing CSR_HOME (run/, artifacts/) as over NFS.
  startDetached({
    command: process.execPath,
    args: [path.join(repoRoot, 'bin', 'csr.js'), 'worker', '--cpu'],
    pidFile: path.join(env.runDir, 'worker-cpu.pid'),
    logFile: path.join(env.logDir, 'worker-cpu.log'),
    env: { ...process.env, CSR_HOME: env.home },
    cwd: repoRoot,
  });
  const names = ['host-a', 'host-b'] as const;
  const startHost = (host: string) => startNamespacedWorker({ env, name: host, args: ['worker', '--gpus', '0'], hostname: host });
  const hosts = new Map<string, NamespacedWorker>(names.map((host) => [host, startHost(host)]));
  const leases = new LeaseWatch(env.runDir, names);
  const client = await connectClient(env);
  let handle: WorkflowHandle | undefined;
  const lines: string[] = [];
  try {
    await Promise.all([...hosts.values()].map((host) => host.ready()));
    const config = smallRun('faults-e2e-hosts', 2);
    const input = newRunInput(config, fixture);
    const runDir = path.join(env.artifactsDir, input.runKey);
    handle = client.workflow.getHandle(await startRun(input));

    // 1. Both hosts mid-generate, each on its own GPU 0: SIGKILL one host's worker and everything under
    //    it; its restart reaps its own stale lease and leaves the other host's lease and step alone.
    const running1 = await waitFor(
      'both generate shards of iteration 1 running on different hosts',
      () => {
        const shards = folders(runDir, 1, 'generate');
        if (shards.length === 2 && shards.every((dir) => fs.existsSync(path.join(dir, 'manifest.json')))) {
          throw new Error('both generate shards finished before they were seen running at once');
        }
        const live = shards
          .filter((dir) => !fs.existsSync(path.join(dir, 'manifest.json')) && completeLines(path.join(dir, 'trees.jsonl')) >= 1)
          .map((dir) => ({ dir, host: hostOf(attemptLogs(dir).at(-1)?.worker ?? '') }));
        const byHost = new Map(live.map((s) => [s.host, s]));
        return names.every((host) => byHost.has(host)) ? byHost : undefined;
      },
      900_000,
      50,
    );
    const [victim, other] = names;
    const victimShard = running1.get(victim)!.dir;
    const otherShard = running1.get(other)!.dir;
    const otherToken = leases.token(other);
    const otherIdentity = processIdentity(hosts.get(other)!.pid)!;
    const itemsAtKill = completeLines(path.join(victimShard, 'trees.jsonl'));
    const killedAt = Date.now();
    await killTree(hosts.get(victim)!.pid);
    t.true(fs.existsSync(path.join(env.runDir, `gpu-${victim}-0.lease`)), `${victim}'s lease is left behind by the kill`);
    hosts.set(victim, startHost(victim));
    await hosts.get(victim)!.ready();
    const victimLog = hosts.get(victim)!.log();
    t.regex(victimLog, new RegExp(`GPU 0: removed a stale lease of dead worker gpu-0@${victim}/`), `${victim} reaped its own lease:\n${victimLog}`);
    t.notRegex(victimLog, new RegExp(other), `${victim} touched nothing of ${other}`);
    const otherStillRunning = !fs.existsSync(path.join(otherShard, 'manifest.json'));
    if (otherStillRunning && otherToken) t.is(leases.token(other), otherToken, `${other}'s lease is the one it took`);
    await waitFor(`${path.basename(victimShard)} to run again`, () => (attemptsStarted(victimShard, 'generate') > 1 ? true : undefined), 300_000);
    lines.push(
      `two hosts: SIGKILL ${victim} mid-generate (${itemsAtKill} trees on disk) while ${other} ran the other shard` +
        `${otherStillRunning ? ' (still running after the restart)' : ''}: ${victim} up and reaped in ${seconds(killedAt).toFixed(1)} s`,
    );

    // 2. A network cut in DPO: the worker process of the host running it is frozen (SIGSTOP), so its
    //    heartbeats stop, and so is its step (a slow step: on an idle machine this DPO takes 3 s, less
    //    than a heartbeat timeout). Temporal retries DPO on the other host, whose step process meets the
    //    step lock held across hosts and waits; the frozen step then goes on (SIGCONT), finishes, and the
    //    other host reuses what it wrote. The frozen worker goes on last.
    const dpoDir = path.join(iterDir(runDir, 1), 'dpo');
    // Once the step process holds the folder's lock (it records its host in .step.lock after taking it).
    const dpoHost = await waitFor(
      'DPO holding its step lock',
      () => {
        if (fs.existsSync(path.join(dpoDir, 'manifest.json'))) throw new Error('DPO finished before it was seen running');
        const first = attemptLogs(dpoDir)[0];
        let holder: { host?: string } = {};
        try {
          holder = JSON.parse(fs.readFileSync(path.join(dpoDir, '.step.lock'), 'utf8')) as { host?: string };
        } catch {
          return undefined;
        }
        return first && holder.host === hostOf(first.worker) ? holder.host : undefined;
      },
      900_000,
      50,
    );
    const otherHost = names.find((h) => h !== dpoHost)!;
    const frozenWorker = hosts.get(dpoHost)!.node();
    if (frozenWorker === undefined) throw new Error(`no Node process of ${dpoHost}'s worker`);
    const frozenStep = stepProcess(hosts.get(dpoHost)!.pid, 'dpo');
    if (frozenStep === undefined) throw new Error(`no DPO step process under ${dpoHost}'s worker`);
    const otherLogBefore = hosts.get(otherHost)!.log().length;
    process.kill(frozenWorker, 'SIGSTOP');
    process.kill(-frozenStep, 'SIGSTOP');
    const frozenAt = Date.now();
    let busySeconds = 0;
    let dpoManifestHash = '';
    try {
      const busy = await waitFor(
        `${otherHost} to meet the DPO step lock`,
        () => /\S+ is being written by pid \d+ on \S+.*/.exec(hosts.get(otherHost)!.log().slice(otherLogBefore))?.[0],
        300_000,
        200,
      );
      busySeconds = seconds(frozenAt);
      t.true(busy.includes(`on ${dpoHost}`), `the lock names its holder on ${dpoHost}: ${busy}`);
      t.false(fs.existsSync(path.join(dpoDir, 'manifest.json')), 'DPO was still running when the other host met its lock');
      process.kill(-frozenStep, 'SIGCONT');
      await waitFor('DPO to finish on the frozen host', () => (fs.existsSync(path.join(dpoDir, 'manifest.json')) ? true : undefined), 600_000);
      dpoManifestHash = sha256(path.join(dpoDir, 'manifest.json'));
      // The run goes on past DPO on the other host: it reused the manifest.
      await waitFor('merge to start', () => (attemptsStarted(path.join(iterDir(runDir, 1), 'merge'), 'merge') > 0 ? true : undefined), 300_000);
    } finally {
      for (const target of [-frozenStep, frozenWorker]) {
        try {
          process.kill(target, 'SIGCONT');
        } catch {
          // gone
        }
      }
    }
    lines.push(
      `two hosts: ${dpoHost} frozen in DPO; ${otherHost} took the retry and met the step lock ${busySeconds.toFixed(1)} s later, ` +
        `reused the finished DPO ${seconds(frozenAt).toFixed(1)} s after the freeze`,
    );

    const history = (await handle.result()) as IterationSummary[];
    t.deepEqual(
      history.map((h) => h.iteration),
      [0, 1],
      'the run completed both iterations',
    );
    leases.stop();
    const checked = checkArtifacts(t, runDir);

    // Both hosts did the run's work, each step folder was computed once (the killed shard resumed).
    const ranOn = new Map<string, string[]>();
    for (const dir of checked) {
      const logs = attemptLogs(dir);
      for (const log of logs) ranOn.set(hostOf(log.worker), [...(ranOn.get(hostOf(log.worker)) ?? []), path.relative(runDir, dir)]);
      const where = path.relative(runDir, dir);
      if (dir === victimShard) {
        const manifest = readManifest(dir)!;
        t.true(manifest.items_reused >= itemsAtKill, `${where}: reused the ${itemsAtKill} trees on disk at the kill: ${JSON.stringify(manifest)}`);
      } else if (dir === dpoDir) {
        const manifest = readManifest(dir)!;
        t.is(manifest.items_reused, 0, `DPO trained once, by one process: ${JSON.stringify(manifest)}`);
        t.is(sha256(path.join(dir, 'manifest.json')), dpoManifestHash, 'the DPO manifest was not written again');
      } else {
        t.true(logs.length <= 1, `${where} ran once: ${logs.map((l) => l.worker).join(', ')}`);
      }
    }
    for (const host of names) t.true((ranOn.get(host) ?? []).length > 0, `${host} ran steps: ${JSON.stringify([...ranOn])}`);
    t.true(attemptsStarted(otherShard, 'generate') === 1, `${other}'s shard was not disturbed by ${victim}'s kill and restart`);
    t.true(isSameProcess(otherIdentity), `${other}'s worker lived through ${victim}'s restart`);

    // Leases: each host's GPU 0 is its own file, never taken by the other host.
    t.true(leases.bothAtOnce, 'both hosts held their GPU 0 at the same time');
    for (const record of leases.records.values()) {
      t.is(record.file, `gpu-${record.host}-0.lease`, `lease ${record.file} of ${record.owner}`);
      t.regex(record.owner, new RegExp(`@${record.host}/`), `lease ${record.file} held by a worker of ${record.host}`);
    }
    lines.push(
      `two hosts: ${leases.records.size} leases taken (${names.map((h) => `${h} ${[...leases.records.values()].filter((r) => r.host === h).length}`).join(', ')}); ` +
        `steps by host: ${names.map((h) => `${h} ${(ranOn.get(h) ?? []).length}`).join(', ')}`,
    );
    t.log(lines.join('\n'));
    console.log(lines.join('\n'));
  } finally {
    leases.stop();
    if (handle) await endRun(handle);
    await client.connection.close();
    for (const host of hosts.values()) await host.stop();
    await stopPidFile(path.join(env.runDir, 'worker-cpu.pid'), 30_000);
  }
});
