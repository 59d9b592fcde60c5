/**
 * Per-GPU leases on one host: a multi-GPU step never shares a GPU with single-GPU work, and a retry
 * never starts on a GPU whose previous process tree still lives.
 *
 * Design
 * - One file per GPU, `<runDir>/gpu-<host>-<id>.lease`, holding JSON
 *   `{ gpu, host, pid, owner, ownerPid, token, since }`: `pid` is the compute process group leader
 *   (null until the child is started), `owner` the worker's id, `ownerPid` the worker's Node process,
 *   `token` a random value that tells this holder's file from any later one; `pidStart`, `ownerStart`
 *   and `boot` make each pid an identity (process-identity.ts), so a reused pid is never taken for them.
 * - Creating a lease is atomic and exclusive: the content is written to a temporary file first and
 *   then hard-linked to the lease name, which fails if the name exists. Readers therefore never see a
 *   half-written lease (plain O_EXCL would leave a moment where the file is empty).
 * - `acquire(ids)` takes all ids or none: it tries them in sorted order and, on the first one held by
 *   someone else, gives back what it took and polls again. Nobody waits while holding, so two
 *   acquirers of overlapping sets cannot deadlock. The caller's AbortSignal ends the wait (the
 *   activity heartbeats on its own timer meanwhile, so a long wait is not mistaken for a dead worker).
 * - A lease is stale when its owner cannot be holding it: the owner process is dead; or the owner
 *   pid is this very process but this process does not hold it (a restarted container reuses pids);
 *   or it has not been refreshed for `staleAfterMs` (holders touch their files every `refreshMs`),
 *   which covers an owner pid reused by an unrelated process.
 * - `reapStale(ids)`, run by each GPU worker at start (and by `acquire` on any stale lease in its
 *   way): if the stale lease's process group still lives, the previous worker died and left it
 *   running, so the group is killed (SIGTERM, SIGKILL after a grace period) and awaited; then the
 *   file is removed. Removal renames the file aside and checks it is still the inode that was judged
 *   stale, so a reaper racing a fresh acquirer puts the fresh lease back instead of deleting it.
 * - `release(ids)` removes only files carrying this holder's token.
 * Leases are per host (the name carries the host id) because the run folder may be shared storage.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { groupRunning, groupStartedBy, killGroup, processRunning } from './process-groups';
import { isSameProcess, processIdentity } from './process-identity';
import { abortableSleep } from '../shared/abortable-sleep';
import { writeFileAtomic } from '../shared/atomic-write';

// This process's own identity, recorded as a lease's owner.
const ownIdentity = processIdentity(process.pid) ?? { pid: process.pid, start: null, boot: null };

/** The content of a lease file. */
export interface LeaseRecord {
  gpu: string;
  host: string;
  /** Leader (= process group id) of the compute process using the GPU; null before it starts. */
  pid: number | null;
  /** Id of the worker holding the lease. */
  owner: string;
  /** The holding worker's Node process. */
  ownerPid: number;
  /** Random per acquisition: tells this holder's file from any later one. */
  token: string;
  /** ISO time of acquisition. */
  since: string;
  /** Start time of `pid` (process-identity.ts): a reused pid is not the recorded group. Absent in old files. */
  pidStart?: string | null;
  /** Start time of `ownerPid`: a reused owner pid does not keep the lease alive. Absent in old files. */
  ownerStart?: string | null;
  /** Boot id when the lease was taken: after a reboot none of its processes can be alive. */
  boot?: string | null;
}

/** Settings of a host's lease table; every default documented. */
export interface GpuLeasesOptions {
  /** Folder of the lease files (`csrEnv().runDir`). */
  runDir: string;
  /** Host id in the file names. @default os.hostname() */
  hostId?: string;
  /** Worker id recorded as owner. @default `<pid>@<host>` */
  owner?: string;
  /** How often a blocked `acquire` looks again. @default 500 */
  pollMs?: number;
  /** How often held leases are touched. @default 10000 */
  refreshMs?: number;
  /** A lease untouched this long is stale whatever its owner pid says. @default 120000 */
  staleAfterMs?: number;
  /** Grace between SIGTERM and SIGKILL when reaping a live group. @default 10000 */
  killGraceMs?: number;
  /** Where reaping and waiting are reported. @default console.warn */
  log?: (message: string) => void;
}

/** What `reapStale` found for one GPU. */
export interface ReapOutcome {
  gpu: string;
  outcome: 'free' | 'held' | 'removed' | 'killed';
  record?: LeaseRecord;
}

/** Who holds the GPUs an `acquire` is waiting for. */
export type WaitReport = (holders: Array<{ gpu: string; record: LeaseRecord | undefined }>) => void;

// Lease files held by this process, by path -> token, shared by every GpuLeases instance in it.
const heldHere = new Map<string, string>();


/** The lease table of one host: acquire, release, reap. */
export class GpuLeases {
  readonly runDir: string;
  readonly hostId: string;
  readonly owner: string;
  private readonly pollMs: number;
  private readonly staleAfterMs: number;
  private readonly killGraceMs: number;
  private readonly log: (message: string) => void;
  // GPU id -> token of the leases this instance holds.
  private readonly mine = new Map<string, string>();
  private readonly refresher: NodeJS.Timeout;

  constructor(options: GpuLeasesOptions) {
    this.runDir = options.runDir;
    this.hostId = options.hostId ?? os.hostname();
    if (!/^[A-Za-z0-9._-]+$/.test(this.hostId)) {
      throw new TypeError(`hostId: expected letters, digits, '.', '_' or '-', got ${JSON.stringify(this.hostId)}`);
    }
    this.owner = options.owner ?? `${process.pid}@${this.hostId}`;
    this.pollMs = options.pollMs ?? 500;
    this.staleAfterMs = options.staleAfterMs ?? 120_000;
    this.killGraceMs = options.killGraceMs ?? 10_000;
    this.log = options.log ?? ((message) => console.warn(message));
    const refreshMs = options.refreshMs ?? 10_000;
    if (refreshMs * 2 > this.staleAfterMs) {
      throw new TypeError(`refreshMs (${refreshMs}) must be at most half of staleAfterMs (${this.staleAfterMs})`);
    }
    fs.mkdirSync(this.runDir, { recursive: true });
    this.refresher = setInterval(() => this.refresh(), refreshMs);
    this.refresher.unref();
  }

  /** Path of the lease file of GPU `id`. */
  leaseFile(id: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(id))
      throw new TypeError(`GPU id: expected letters or digits, got ${JSON.stringify(id)}`);
    return path.join(this.runDir, `gpu-${this.hostId}-${id}.lease`);
  }

  /** The lease of GPU `id`, or undefined when it is free or unreadable. */
  read(id: string): LeaseRecord | undefined {
    return readRecord(this.leaseFile(id))?.record;
  }

  /** True if this instance holds GPU `id`. */
  holds(id: string): boolean {
    return this.mine.has(id);
  }

  /** Take every GPU of `ids` now, or none; true when taken. */
  tryAcquire(ids: readonly string[]): boolean {
    const sorted = uniqueSorted(ids);
    const taken: string[] = [];
    for (const id of sorted) {
      if (!this.createLease(id)) {
        this.release(taken);
        return false;
      }
      taken.push(id);
    }
    return true;
  }

  /**
   * Take every GPU of `ids`, waiting (and reaping stale leases in the way) until all are free at once.
   * Aborting `signal` ends the wait with `signal.reason`, holding nothing.
   */
  async acquire(ids: readonly string[], signal?: AbortSignal, onWait?: WaitReport): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.tryAcquire(ids)) return;
      const holders = uniqueSorted(ids)
        .map((gpu) => ({ gpu, found: readRecord(this.leaseFile(gpu)) }))
        .filter((entry) => entry.found !== undefined);
      for (const { gpu, found } of holders) {
        if (found && this.isStale(gpu, found)) await this.reap(gpu, found);
      }
      onWait?.(holders.map(({ gpu, found }) => ({ gpu, record: found?.record })));
      await abortableSleep(this.pollMs, signal);
    }
  }

  /** Record the compute process group that now uses the held GPUs `ids`. */
  setPid(ids: readonly string[], pid: number | null): void {
    for (const id of ids) {
      const file = this.leaseFile(id);
      const token = this.mine.get(id);
      const found = readRecord(file);
      if (token === undefined || found?.record === undefined || found.record.token !== token) {
        throw new Error(`GPU ${id}: lease ${file} is not held by ${this.owner}; cannot record pid ${pid}`);
      }
      const pidStart = pid === null ? null : (processIdentity(pid)?.start ?? null);
      writeFileAtomic(file, `${JSON.stringify({ ...found.record, pid, pidStart })}\n`);
    }
  }

  /** Give back the GPUs `ids`; a lease that is no longer this holder's is left alone. */
  release(ids: readonly string[]): void {
    for (const id of ids) {
      const file = this.leaseFile(id);
      const token = this.mine.get(id);
      if (token === undefined) continue;
      this.mine.delete(id);
      heldHere.delete(file);
      if (readRecord(file)?.record?.token === token) fs.rmSync(file, { force: true });
    }
  }

  /** Clear stale leases of `ids` (killing any process group they left running); report what was found. */
  async reapStale(ids: readonly string[]): Promise<ReapOutcome[]> {
    const outcomes: ReapOutcome[] = [];
    for (const gpu of uniqueSorted(ids)) {
      const found = readRecord(this.leaseFile(gpu));
      if (found === undefined) outcomes.push({ gpu, outcome: 'free' });
      else if (!this.isStale(gpu, found)) outcomes.push({ gpu, outcome: 'held', record: found.record });
      else outcomes.push({ gpu, outcome: await this.reap(gpu, found), record: found.record });
    }
    return outcomes;
  }

  /** Release everything this instance holds and stop refreshing. */
  close(): void {
    clearInterval(this.refresher);
    this.release([...this.mine.keys()]);
  }

  private createLease(id: string): boolean {
    const file = this.leaseFile(id);
    const record: LeaseRecord = {
      gpu: id,
      host: this.hostId,
      pid: null,
      owner: this.owner,
      ownerPid: process.pid,
      token: randomUUID(),
      since: new Date().toISOString(),
      ownerStart: ownIdentity.start,
      boot: ownIdentity.boot,
    };
    const tmp = `${file}.${record.token}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(record)}\n`);
    try {
      fs.linkSync(tmp, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    this.mine.set(id, record.token);
    heldHere.set(file, record.token);
    return true;
  }

  private isStale(gpu: string, found: FoundLease): boolean {
    if (Date.now() - found.mtimeMs > this.staleAfterMs) return true;
    // Unreadable: someone else's or damaged; only age can tell.
    if (found.record === undefined) return false;
    const { ownerPid, token } = found.record;
    if (ownerPid === process.pid) return heldHere.get(this.leaseFile(gpu)) !== token;
    if (found.record.ownerStart === undefined) return !processRunning(ownerPid); // a lease of an older version
    return !isSameProcess({ pid: ownerPid, start: found.record.ownerStart, boot: found.record.boot ?? null });
  }

  private async reap(gpu: string, found: FoundLease): Promise<'removed' | 'killed'> {
    const file = this.leaseFile(gpu);
    const pid = found.record?.pid;
    let outcome: 'removed' | 'killed' = 'removed';
    if (typeof pid === 'number' && pid > 0 && groupRunning(pid)) {
      const record = found.record as LeaseRecord;
      const leader =
        record.pidStart === undefined ? undefined : { pid, start: record.pidStart, boot: record.boot ?? null };
      if (leader !== undefined && !groupStartedBy(leader)) {
        this.log(`GPU ${gpu}: pid ${pid} of stale lease ${file} now belongs to an unrelated process; left alone`);
      } else {
        this.log(`GPU ${gpu}: killing process group ${pid} left running by ${record.owner} (stale lease ${file})`);
        // killGroup checks the identity again before every signal, in case the group ends meanwhile.
        if (await killGroup(pid, this.killGraceMs, leader)) outcome = 'killed';
      }
    }
    removeIfSame(file, found.ino);
    return outcome;
  }

  private refresh(): void {
    const now = new Date();
    for (const id of this.mine.keys()) {
      try {
        fs.utimesSync(this.leaseFile(id), now, now);
      } catch {
        // Gone means someone judged it stale; the next release or setPid says so loudly.
      }
    }
  }
}

interface FoundLease {
  /** Undefined when the file is not a readable lease. */
  record?: LeaseRecord;
  ino: number;
  mtimeMs: number;
}

function readRecord(file: string): FoundLease | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const stat = fs.fstatSync(fd);
    let record: LeaseRecord | undefined;
    try {
      const parsed = JSON.parse(fs.readFileSync(fd, 'utf8')) as LeaseRecord;
      if (Number.isInteger(parsed.ownerPid) && typeof parsed.token === 'string') record = parsed;
    } catch {
      record = undefined;
    }
    return { record, ino: stat.ino, mtimeMs: stat.mtimeMs };
  } finally {
    fs.closeSync(fd);
  }
}

function removeIfSame(file: string, ino: number): void {
  const aside = `${file}.${randomUUID()}.reap`;
  try {
    fs.renameSync(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  try {
    if (fs.statSync(aside).ino !== ino) {
      // A fresh lease replaced the stale one between our read and the rename: put it back.
      try {
        fs.linkSync(aside, file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
  } finally {
    fs.rmSync(aside, { force: true });
  }
}

function uniqueSorted(ids: readonly string[]): string[] {
  return [...new Set(ids)].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

