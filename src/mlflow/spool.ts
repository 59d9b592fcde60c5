/**
 * A folder of MLflow writes not yet delivered: one JSON file per write (plus a `.blob` for artifact
 * bytes) under `pending/`, moved to `rejected/` when MLflow refuses it for good. Writing each file
 * before the caller continues means a process that exits mid-outage loses nothing; a later tracker
 * on the same folder delivers it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { runStatus } from './schemas';
import { bootId, isSameProcess, parseIdentity, processIdentity } from '../gpu/process-identity';
import { writeFileAtomic } from '../shared/atomic-write';

function deliveryLockIsStale(file: string): boolean {
  let text: string;
  let ageMs: number;
  try {
    text = fs.readFileSync(file, 'utf8');
    ageMs = Date.now() - fs.statSync(file).mtimeMs;
  } catch {
    return true; // released meanwhile
  }
  const holder = parseIdentity(text);
  if (holder !== undefined && holder.boot !== null && holder.boot === bootId()) return !isSameProcess(holder);
  return ageMs > 10 * 60_000;
}

const tags = z.record(z.string(), z.string());

/** A run named by its idempotency key, created on first use (so it can be named during an outage). */
export const runSpecSchema = z.object({
  experimentName: z.string().min(1),
  /** Unique within the experiment, e.g. `<workflowId>/<step>`. */
  idempotencyKey: z.string().min(1),
  name: z.string().min(1),
  tags: tags.optional(),
  /** Nest under this run (a run id or another spec). */
  get parent() {
    return z.union([z.string().min(1), runSpecSchema]).optional();
  },
  /** Milliseconds since the epoch; fixed when the write is first buffered. */
  startTime: z.number().optional(),
});
/** A run named by its idempotency key; see {@link runSpecSchema}. */
export type RunSpec = z.infer<typeof runSpecSchema>;

/** Where a write goes: a run id, or a run spec resolved (found or created) at delivery. */
export const runTargetSchema = z.union([z.string().min(1), runSpecSchema]);
/** A run id, or a {@link RunSpec} resolved at delivery. */
export type RunTarget = string | RunSpec;

const wireMetric = z.object({
  key: z.string(),
  value: z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])]),
  timestamp: z.number(),
  step: z.number(),
});
const wireKeyValue = z.object({ key: z.string(), value: z.string() });

/** One buffered write, as stored in a spool file. */
export const spooledWriteSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('ensure-run'), run: runSpecSchema }),
  z.object({
    kind: z.literal('log-batch'),
    run: runTargetSchema,
    batch: z.object({ metrics: z.array(wireMetric), params: z.array(wireKeyValue), tags: z.array(wireKeyValue) }),
  }),
  z.object({ kind: z.literal('set-tag'), run: runTargetSchema, key: z.string(), value: z.string() }),
  z.object({ kind: z.literal('update-run'), run: runTargetSchema, status: runStatus, endTime: z.number() }),
  /** `blob`: file name, in the pending folder, of the spool's own copy of the bytes. */
  z.object({ kind: z.literal('upload-artifact'), run: runTargetSchema, artifactPath: z.string(), blob: z.string() }),
]);
/** One buffered write. */
export type SpooledWrite = z.infer<typeof spooledWriteSchema>;

/** A spooled write and its file id (ids sort in the order the writes were made). */
export interface SpoolEntry {
  id: string;
  write: SpooledWrite;
}

let sequence = 0;

/** The spool folder of one tracker (several processes may share it: every write is idempotent). */
export class Spool {
  readonly pendingDir: string;
  readonly rejectedDir: string;

  constructor(readonly dir: string) {
    this.pendingDir = path.join(dir, 'pending');
    this.rejectedDir = path.join(dir, 'rejected');
    fs.mkdirSync(this.pendingDir, { recursive: true });
    fs.mkdirSync(this.rejectedDir, { recursive: true });
  }

  /** A new id, time-ordered, unique across processes sharing the folder. */
  newId(): string {
    sequence += 1;
    return `${String(Date.now()).padStart(15, '0')}-${process.pid}-${String(sequence).padStart(6, '0')}`;
  }

  /** Path of the blob an artifact write with this id keeps its bytes in. */
  blobPath(id: string): string {
    return path.join(this.pendingDir, `${id}.blob`);
  }

  /**
   * Write a spool file: to a temp name, fsynced, renamed, and the folder fsynced, so neither a crash nor
   * a power cut leaves half a file or loses one the caller was told is safe.
   */
  add(id: string, write: SpooledWrite): string {
    const file = path.join(this.pendingDir, `${id}.json`);
    writeFileAtomic(file, JSON.stringify(write), { durable: true });
    return file;
  }

  /** True when any write waits in the folder (this process's or another's). */
  hasPending(): boolean {
    try {
      return fs.readdirSync(this.pendingDir).some((name) => name.endsWith('.json'));
    } catch {
      return false;
    }
  }

  /** When (epoch ms) the write with this id was first made: ids start with that time. */
  createdAt(id: string): number {
    const ms = Number(id.split('-')[0]);
    return Number.isFinite(ms) ? ms : Date.now();
  }

  /**
   * Take the folder's delivery lock, or undefined while another live process holds it. The lock file
   * records its holder's identity (pid + start time + boot id), so one left by a dead process is taken
   * over; a holder on another host (shared storage) is trusted until the file is 10 minutes old.
   */
  lockForDelivery(): (() => void) | undefined {
    const file = path.join(this.dir, 'deliver.lock');
    const me = processIdentity(process.pid) ?? { pid: process.pid, start: null, boot: null };
    for (let tries = 0; tries < 2; tries++) {
      try {
        fs.writeFileSync(file, JSON.stringify(me), { flag: 'wx' });
        return () => {
          if (fs.readFileSync(file, 'utf8') === JSON.stringify(me)) fs.rmSync(file, { force: true });
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      if (!deliveryLockIsStale(file)) return undefined;
      fs.rmSync(file, { force: true });
    }
    return undefined;
  }

  /** Every pending write in id order; unreadable files are moved to `rejected/` and reported. */
  list(onBadFile: (file: string, problem: string) => void): SpoolEntry[] {
    const entries: SpoolEntry[] = [];
    for (const name of fs
      .readdirSync(this.pendingDir)
      .filter((n) => n.endsWith('.json'))
      .sort()) {
      const id = name.slice(0, -'.json'.length);
      let text: string;
      try {
        text = fs.readFileSync(path.join(this.pendingDir, name), 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // delivered by another process meanwhile
        throw error;
      }
      try {
        entries.push({ id, write: spooledWriteSchema.parse(JSON.parse(text)) });
      } catch (error) {
        const problem = error instanceof z.ZodError ? z.prettifyError(error) : (error as Error).message;
        this.reject(id, `unreadable spool file: ${problem}`);
        onBadFile(path.join(this.rejectedDir, name), problem);
      }
    }
    return entries;
  }

  /** Forget a delivered write (quietly, if another process delivered it first). */
  remove(id: string): void {
    fs.rmSync(path.join(this.pendingDir, `${id}.json`), { force: true });
    fs.rmSync(this.blobPath(id), { force: true });
  }

  /** Move a write MLflow refused to `rejected/`, with the reason next to it; returns the new path. */
  reject(id: string, reason: string, write?: SpooledWrite): string {
    const target = path.join(this.rejectedDir, `${id}.json`);
    for (const suffix of ['.json', '.blob']) {
      try {
        fs.renameSync(path.join(this.pendingDir, `${id}${suffix}`), path.join(this.rejectedDir, `${id}${suffix}`));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    // A write that never reached the disk (the spool was unwritable then) is kept now.
    if (write !== undefined && !fs.existsSync(target)) fs.writeFileSync(target, JSON.stringify(write));
    fs.writeFileSync(path.join(this.rejectedDir, `${id}.reason.txt`), `${reason}\n`);
    return target;
  }
}
