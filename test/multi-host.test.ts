/**
 * One CSR_HOME on shared storage, workers on several hosts: what one host records about its own
 * processes is never judged, reaped or taken over by another host on the strength of a local pid.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { GpuLeases, type LeaseRecord } from '../src/gpu/leases';
import { processRunning } from '../src/gpu/process-groups';
import { Spool } from '../src/mlflow/spool';
import { tempDir } from './helpers/temporal-harness';

test("a host reaps only its own GPU leases, whatever the pids in another host's lease mean here", async (t) => {
  const shared = tempDir(); // the shared run/ folder
  const hostA = new GpuLeases({ runDir: shared, hostId: 'host-a', log: () => undefined });
  const hostB = new GpuLeases({ runDir: shared, hostId: 'host-b', log: () => undefined });
  t.true(hostB.tryAcquire(['0']));
  // Host B's lease names a compute process group by a pid that, on host A, is a live local process.
  const local = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
  const record = JSON.parse(fs.readFileSync(hostB.leaseFile('0'), 'utf8')) as LeaseRecord;
  fs.writeFileSync(hostB.leaseFile('0'), JSON.stringify({ ...record, pid: local.pid, ownerPid: 999_999 }));
  const outcomes = await hostA.reapStale(['0']);
  t.is(outcomes[0]?.outcome, 'free', 'host A sees its own GPU 0 free');
  t.true(fs.existsSync(hostB.leaseFile('0')), "host B's lease is untouched");
  t.true(processRunning(local.pid as number));
  t.true(hostA.tryAcquire(['0']), 'GPU 0 of host A is another GPU than GPU 0 of host B');
  hostA.close();
  hostB.close();
  process.kill(-(local.pid as number), 'SIGKILL');
});

test("the MLflow spool's delivery lock of another host is trusted until it is 10 minutes old", (t) => {
  const spool = new Spool(path.join(tempDir(), 'spool'));
  const lock = path.join(spool.dir, 'deliver.lock');
  // Held by a process on another machine: its pid means nothing here, its boot id is not ours.
  fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, start: '1', boot: 'another-host-boot-id' }));
  t.is(spool.lockForDelivery(), undefined, 'a fresh lock of another host is respected');
  const elevenMinutesAgo = new Date(Date.now() - 11 * 60_000);
  fs.utimesSync(lock, elevenMinutesAgo, elevenMinutesAgo);
  const release = spool.lockForDelivery();
  t.truthy(release, 'an abandoned one is taken over');
  release?.();
  t.false(fs.existsSync(lock));
});

test('a delivery lock left by a dead process on this host is taken over at once', (t) => {
  const spool = new Spool(path.join(tempDir(), 'spool'));
  const lock = path.join(spool.dir, 'deliver.lock');
  const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  // This pid, but another start time: the process that wrote it is gone.
  fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, start: '1', boot }));
  const release = spool.lockForDelivery();
  t.truthy(release);
  release?.();
});
