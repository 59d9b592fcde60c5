/**
 * Process identity = pid + start time + boot id: a recorded pid that an unrelated process has taken is
 * never signalled (pid files of `csr down`, GPU lease reaping), and a refused kill ends with a message.
 * The "unrelated process" is a real live process; only the record names another start time, which is
 * exactly what a pid file holds after its process died and the kernel gave the pid to a newcomer.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { GpuLeases, type LeaseRecord } from '../src/gpu/leases';
import { KillNotPermittedError, killGroup, processRunning } from '../src/gpu/process-groups';
import { bootId, isSameProcess, processIdentity } from '../src/gpu/process-identity';
import { livePid, startDetached, stopPidFile } from '../app/stack/process-group';
import { repoRoot, tempDir } from './helpers/temporal-harness';

/** An unrelated live process in a group of its own, as another user's job would be. */
function bystander(): number {
  const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
  child.unref();
  return child.pid as number;
}

const kill = (pid: number) => {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
};

test('the identity of a live process is stable, and another start time is another process', (t) => {
  const pid = bystander();
  const identity = processIdentity(pid);
  t.truthy(identity?.start);
  t.is(identity?.boot, bootId());
  t.true(isSameProcess(identity!));
  t.false(isSameProcess({ ...identity!, start: String(Number(identity!.start) - 1) }));
  kill(pid);
});

test('a pid file records pid, start time and boot id, and stopping it stops that process', async (t) => {
  const dir = tempDir();
  const pidFile = path.join(dir, 'server.pid');
  const pid = startDetached({ command: 'sleep', args: ['300'], pidFile, logFile: path.join(dir, 'log') });
  t.deepEqual(JSON.parse(fs.readFileSync(pidFile, 'utf8')), processIdentity(pid));
  t.is(livePid(pidFile), pid);
  t.true(await stopPidFile(pidFile, 1000));
  t.false(processRunning(pid));
});

test('a pid file whose pid now belongs to an unrelated process: stop leaves it alone', async (t) => {
  const dir = tempDir();
  const other = bystander();
  const pidFile = path.join(dir, 'worker-cpu.pid');
  const now = processIdentity(other)!;
  fs.writeFileSync(pidFile, JSON.stringify({ ...now, start: String(Number(now.start) - 500) }));
  t.is(livePid(pidFile), undefined);
  t.false(await stopPidFile(pidFile, 1000));
  t.true(processRunning(other), 'the unrelated process still runs');
  t.false(fs.existsSync(pidFile), 'the stale pid file is gone');
  kill(other);
});

test('a bare pid file of an older version is trusted only for a process that started before it was written', async (t) => {
  const dir = tempDir();
  const other = bystander();
  const pidFile = path.join(dir, 'mlflow.pid');
  fs.writeFileSync(pidFile, `${other}\n`);
  const anHourAgo = new Date(Date.now() - 3_600_000);
  fs.utimesSync(pidFile, anHourAgo, anHourAgo);
  t.false(await stopPidFile(pidFile, 1000));
  t.true(processRunning(other));
  fs.writeFileSync(pidFile, `${other}\n`); // written after the start: the recorded process
  t.is(livePid(pidFile), other);
  kill(other);
});

test('reaping a stale lease leaves a reused compute pid alone', async (t) => {
  const runDir = tempDir();
  const leases = new GpuLeases({ runDir, hostId: 'testhost', pollMs: 20, killGraceMs: 1000, log: () => undefined });
  const other = bystander();
  const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
  const now = processIdentity(other)!;
  const record: LeaseRecord = {
    gpu: '0',
    host: 'testhost',
    pid: other,
    pidStart: String(Number(now.start) - 500),
    owner: 'old-worker',
    ownerPid: Number(dead),
    ownerStart: '1',
    boot: now.boot,
    token: 'old',
    since: new Date().toISOString(),
  };
  fs.writeFileSync(leases.leaseFile('0'), JSON.stringify(record));
  const [outcome] = await leases.reapStale(['0']);
  t.is(outcome?.outcome, 'removed');
  t.true(processRunning(other), 'the process that reused the pid was not signalled');
  // The same lease naming the real start time is the group it left running: that one is killed.
  fs.writeFileSync(leases.leaseFile('0'), JSON.stringify({ ...record, pidStart: now.start }));
  t.is((await leases.reapStale(['0']))[0]?.outcome, 'killed');
  t.false(processRunning(other));
  leases.close();
});

test('a lease whose owner pid was reused by another live process is stale', async (t) => {
  const runDir = tempDir();
  const leases = new GpuLeases({ runDir, hostId: 'testhost', pollMs: 20, log: () => undefined });
  const other = bystander();
  const now = processIdentity(other)!;
  const record: LeaseRecord = {
    gpu: '0',
    host: 'testhost',
    pid: null,
    owner: 'old-worker',
    ownerPid: other,
    ownerStart: String(Number(now.start) - 500),
    boot: now.boot,
    token: 'old',
    since: new Date().toISOString(),
  };
  fs.writeFileSync(leases.leaseFile('0'), JSON.stringify(record));
  t.is((await leases.reapStale(['0']))[0]?.outcome, 'removed');
  t.true(leases.tryAcquire(['0']));
  leases.close();
  kill(other);
});

test('a kill the kernel refuses (EPERM) ends with a clear message instead of looping', async (t) => {
  if (process.getuid?.() !== 0) {
    t.pass('needs root to start a helper as another user; skipped');
    return;
  }
  // The helper loads this checkout's code as nobody: a clone in a private folder (mktemp -d is 0700) is
  // out of its reach, which says nothing about the kill.
  const probe = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(path.join(repoRoot, 'node_modules', 'tsx', 'package.json'))})`], {
    uid: 65534,
    gid: 65534,
    cwd: '/',
    timeout: 30_000,
  });
  if (probe.status !== 0) {
    t.pass('user nobody cannot read this checkout (a private folder); skipped');
    return;
  }
  const target = bystander(); // root's process; the helper below runs as nobody and may not signal it
  const script =
    `require('tsx/cjs'); const { killGroup } = require(${JSON.stringify(path.join(repoRoot, 'src/gpu/process-groups.ts'))});` +
    `killGroup(${target}, 200).then(() => { console.log('returned'); process.exit(0); },` +
    ` (e) => { console.log(e.name + ': ' + e.message); process.exit(3); });`;
  const helper = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, cwd: repoRoot, timeout: 30_000 });
  const said = helper.stdout.toString();
  t.is(helper.status, 3, `${said}${helper.stderr.toString()}`);
  t.true(said.includes(`${KillNotPermittedError.name}: not permitted to signal process group ${target} (EPERM`), said);
  t.true(processRunning(target));
  t.true(await killGroup(target, 200));
});
