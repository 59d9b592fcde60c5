import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { GpuLeases, type LeaseRecord } from '../src/gpu/leases';
import { groupRunning, processRunning } from '../src/gpu/process-groups';
import { isAlive } from '../app/stack/process-group';
import { repoRoot, tempDir } from './helpers/temporal-harness';

const quiet = () => undefined;
const leasesIn = (runDir: string, owner: string) =>
  new GpuLeases({ runDir, hostId: 'testhost', owner, pollMs: 20, killGraceMs: 2000, log: quiet });

/** A pid that certainly belonged to a process and is now free. */
function deadPid(): number {
  const done = spawnSync('sh', ['-c', 'echo $$']);
  const pid = Number(done.stdout.toString().trim());
  if (isAlive(pid)) throw new Error(`pid ${pid} still alive`);
  return pid;
}

function writeLease(file: string, fields: Partial<LeaseRecord>): void {
  const record: LeaseRecord = {
    gpu: '0',
    host: 'testhost',
    pid: null,
    owner: 'old-worker',
    ownerPid: deadPid(),
    token: 'old-token',
    since: new Date().toISOString(),
    ...fields,
  };
  fs.writeFileSync(file, JSON.stringify(record));
}

test('acquire takes all GPUs or none', (t) => {
  const runDir = tempDir();
  const a = leasesIn(runDir, 'a');
  const b = leasesIn(runDir, 'b');
  t.true(a.tryAcquire(['1']));
  t.false(b.tryAcquire(['0', '1', '2']));
  // The partial take of GPU 0 was rolled back.
  t.is(b.read('0'), undefined);
  t.is(b.read('2'), undefined);
  t.is(a.read('1')?.owner, 'a');
  a.release(['1']);
  t.true(b.tryAcquire(['0', '1', '2']));
  t.deepEqual(
    ['0', '1', '2'].map((id) => b.read(id)?.owner),
    ['b', 'b', 'b'],
  );
  b.close();
  a.close();
  t.deepEqual(fs.readdirSync(runDir), []);
});

test('acquire waits for a held GPU and an abort ends the wait holding nothing', async (t) => {
  const runDir = tempDir();
  const a = leasesIn(runDir, 'a');
  const b = leasesIn(runDir, 'b');
  t.true(a.tryAcquire(['0']));
  const controller = new AbortController();
  const waiting = b.acquire(['0', '1'], controller.signal);
  await new Promise((resolve) => setTimeout(resolve, 150));
  controller.abort(new Error('cancelled by test'));
  await t.throwsAsync(waiting, { message: 'cancelled by test' });
  t.is(b.read('1'), undefined);

  const later = b.acquire(['0', '1']);
  setTimeout(() => a.release(['0']), 100);
  await later;
  t.true(b.holds('0') && b.holds('1'));
  b.close();
  a.close();
});

test('setPid records the compute process group in the held lease only', (t) => {
  const runDir = tempDir();
  const a = leasesIn(runDir, 'a');
  t.true(a.tryAcquire(['3']));
  a.setPid(['3'], 4242);
  t.is(a.read('3')?.pid, 4242);
  t.throws(() => a.setPid(['4'], 1), { message: /not held/ });
  a.close();
});

test('two processes contending for overlapping GPU sets never hold the same GPU at once', async (t) => {
  // Overlap is detected without clocks: while holding, a contender creates a marker file per GPU
  // with O_EXCL, and removes it before releasing. A second holder of the same GPU finds the marker.
  // (Comparing timestamps across processes is unreliable: each Node process has its own
  // performance.timeOrigin, and on a loaded CI machine they differ by milliseconds, which reads as
  // overlap between holds that follow each other.)
  const runDir = tempDir();
  const logDir = tempDir();
  const markerDir = tempDir();
  const script = path.join(logDir, 'contender.ts');
  fs.writeFileSync(
    script,
    `import * as fs from 'node:fs';
import * as path from 'node:path';
import { GpuLeases } from ${JSON.stringify(path.join(repoRoot, 'src', 'gpu', 'leases'))};
const [runDir, name, idsText, markerDir] = process.argv.slice(2);
const ids = idsText.split(',');
const notes: string[] = [];
const leases = new GpuLeases({ runDir, hostId: 'testhost', owner: name, pollMs: 1, log: (m) => notes.push(m) });
(async () => {
  const deadline = Date.now() + 2500;
  let rounds = 0;
  let overlaps = 0;
  while (Date.now() < deadline) {
    await leases.acquire(ids);
    for (const id of ids) if (leases.read(id)?.owner !== name) throw new Error('lease of ' + id + ' is not mine');
    const made: string[] = [];
    for (const id of ids) {
      const marker = path.join(markerDir, 'gpu-' + id);
      try {
        fs.writeFileSync(marker, name, { flag: 'wx' });
        made.push(marker);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        overlaps++;
      }
    }
    await new Promise((r) => setTimeout(r, Math.random() * 5));
    for (const marker of made) fs.rmSync(marker);
    leases.release(ids);
    rounds++;
    await new Promise((r) => setTimeout(r, Math.random() * 3));
  }
  leases.close();
  console.log(JSON.stringify({ rounds, overlaps, notes }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
  );
  const contenders = [
    ['single-1', '1'],
    ['pair-01', '0,1'],
    ['pair-12', '1,2'],
  ].map(
    ([name, ids]) =>
      new Promise<{ rounds: number; overlaps: number; notes: string[] }>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', script, runDir, name as string, ids as string, markerDir],
          {
            cwd: repoRoot,
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        let out = '';
        child.stdout.on('data', (chunk) => (out += chunk));
        child.on('exit', (code) =>
          code === 0 ? resolve(JSON.parse(out.trim())) : reject(new Error(`${name} exited ${code}`)),
        );
      }),
  );
  const results = await Promise.all(contenders);
  const rounds = results.map((r) => r.rounds);
  for (const count of rounds) t.true(count > 5, `each contender got the GPUs several times (${rounds})`);
  t.deepEqual(
    results.map((r) => r.overlaps),
    [0, 0, 0],
  );
  // No contender judged a live rival's lease stale.
  t.deepEqual(results.flatMap((r) => r.notes), []);
  t.deepEqual(fs.readdirSync(runDir), []);
  t.deepEqual(fs.readdirSync(markerDir), []);
});

test('a stale lease whose process is dead is removed', async (t) => {
  const runDir = tempDir();
  const leases = leasesIn(runDir, 'new-worker');
  writeLease(leases.leaseFile('0'), { pid: deadPid() });
  const [outcome] = await leases.reapStale(['0']);
  t.is(outcome?.outcome, 'removed');
  t.false(fs.existsSync(leases.leaseFile('0')));
  t.true(leases.tryAcquire(['0']));
  leases.close();
});

test('a stale lease whose process group lives gets the whole group killed, then removed', async (t) => {
  const runDir = tempDir();
  const leases = leasesIn(runDir, 'new-worker');
  // A leader that forked a member, as a step with data-loader processes would.
  const leader = spawn('sh', ['-c', 'sleep 300 & echo $!; wait'], {
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const member = await new Promise<number>((resolve) =>
    leader.stdout.once('data', (chunk) => resolve(Number(String(chunk).trim()))),
  );
  const pid = leader.pid as number;
  t.true(groupRunning(pid) && processRunning(member));
  writeLease(leases.leaseFile('0'), { pid });
  const [outcome] = await leases.reapStale(['0']);
  t.is(outcome?.outcome, 'killed');
  t.false(groupRunning(pid));
  t.false(processRunning(member));
  t.false(fs.existsSync(leases.leaseFile('0')));
  leases.close();
});

test('a lease of a live worker is left alone, and acquire reaps a stale one in its way', async (t) => {
  const runDir = tempDir();
  const leases = leasesIn(runDir, 'new-worker');
  const owner = spawn('sleep', ['300']);
  writeLease(leases.leaseFile('0'), { ownerPid: owner.pid as number, owner: 'live-worker' });
  const [held] = await leases.reapStale(['0']);
  t.is(held?.outcome, 'held');
  t.false(leases.tryAcquire(['0']));
  owner.kill('SIGKILL');
  await new Promise((resolve) => owner.once('exit', resolve));
  await leases.acquire(['0'], AbortSignal.timeout(5000));
  t.is(leases.read('0')?.owner, 'new-worker');
  leases.close();
});

test('a lease naming this process but not held by it is stale (a restarted container reuses pids)', async (t) => {
  const runDir = tempDir();
  const leases = leasesIn(runDir, 'new-worker');
  writeLease(leases.leaseFile('5'), { ownerPid: process.pid, token: 'from-a-previous-life' });
  const [outcome] = await leases.reapStale(['5']);
  t.is(outcome?.outcome, 'removed');
  leases.close();
});
