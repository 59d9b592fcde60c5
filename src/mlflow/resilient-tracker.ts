/**
 * MLflow writes that never fail a pipeline step. Each write is tried at once; if MLflow is
 * unreachable, answers 5xx/429 or hangs past the timeout (all three are an outage), it is kept in
 * memory and in the spool folder, a warning says what was buffered and why, and it is delivered
 * later, in the background and on {@link ResilientTracker.flush}: in the order it was made, one
 * process at a time per spool folder, retried for as long as the outage lasts and given up only when
 * older than `maxAgeMs` (7 days by default). A write MLflow refuses for good (4xx) is warned about
 * and kept under `rejected/`, never retried. A write is removed from the spool right after MLflow
 * accepted it; if the process dies in between, the next delivery repeats it with the same content
 * (timestamps fixed at first try), which MLflow's log-batch stores once (identical points are one row).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { toWireBatch, type LogBatchInput } from './batch';
import { MlflowClient } from './client';
import { isRetryable } from './errors';
import type { RetryOptions } from './retry';
import type { RunStatus } from './schemas';
import { Spool, type RunSpec, type RunTarget, type SpooledWrite } from './spool';

/** Options of {@link ResilientTracker}. */
export interface ResilientTrackerOptions {
  /** The strict client to deliver through. */
  client: MlflowClient;
  /** Folder for undelivered writes (e.g. `$CSR_HOME/spool/mlflow`); created if missing. */
  spoolDir: string;
  /** Retry buffered writes in the background this often. @default 15000 */
  retryIntervalMs?: number;
  /** Retries of one delivery attempt, kept short so a pipeline step never waits long on MLflow. @default 2 attempts, 200 ms apart */
  deliveryRetry?: RetryOptions;
  /** Give up on a buffered write only once it is this old (a warning names it; it is kept under `rejected/`). @default 7 days */
  maxAgeMs?: number;
  /** Where warnings go. @default console.warn */
  warn?: (message: string) => void;
}

/** What a flush achieved. */
export interface FlushResult {
  /** Writes delivered by this flush. */
  delivered: number;
  /** Writes still waiting (MLflow still unreachable). */
  pending: number;
  /** Writes MLflow refused by this flush, now under `rejected/`. */
  rejected: number;
}

interface Queued {
  id: string;
  write: SpooledWrite;
  attempts: number;
  /** False when the spool folder could not take it: then only this process knows it. */
  spooled: boolean;
}

/** Buffers MLflow writes through outages; no method rejects because of MLflow. */
export class ResilientTracker {
  private readonly client: MlflowClient;
  private readonly spool: Spool;
  private readonly warn: (message: string) => void;
  private readonly retryIntervalMs: number;
  private readonly maxAgeMs: number;
  /** Writes not yet delivered, by spool id; the spool folder holds the same, plus any other process's. */
  private readonly queue = new Map<string, Queued>();
  private readonly runIds = new Map<string, string>();
  private readonly experimentIds = new Map<string, string>();
  private flushing: Promise<FlushResult> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: ResilientTrackerOptions) {
    this.client = options.client.withOptions({
      retry: options.deliveryRetry ?? { attempts: 2, initialDelayMs: 200, maxDelayMs: 1000 },
      timeoutMs: Math.min(options.client.options.timeoutMs ?? 30_000, 15_000),
    });
    this.spool = new Spool(options.spoolDir);
    this.warn = options.warn ?? ((message) => console.warn(message));
    this.retryIntervalMs = options.retryIntervalMs ?? 15_000;
    this.maxAgeMs = options.maxAgeMs ?? 7 * 24 * 3600 * 1000;
    if (!(this.maxAgeMs > 0)) throw new TypeError(`maxAgeMs: expected a number > 0, got ${this.maxAgeMs}`);
    const loaded = this.loadSpool();
    if (loaded > 0) {
      this.warn(`[mlflow] ${loaded} MLflow write(s) left in ${this.spool.dir} by an earlier process; delivering them`);
      this.schedule(0);
    }
  }

  /** Number of writes waiting for MLflow. */
  get pending(): number {
    return this.queue.size;
  }

  /** The spool folder. */
  get spoolDir(): string {
    return this.spool.dir;
  }

  /**
   * Find or create the run of `spec` now; undefined if MLflow is unreachable (the run is then
   * created on delivery, and writes addressed to `spec` reach it).
   */
  async ensureRun(spec: RunSpec): Promise<string | undefined> {
    const run = withStartTime(spec, Date.now());
    try {
      return await this.resolveRun(run);
    } catch (error) {
      this.failed({ kind: 'ensure-run', run }, error);
      return undefined;
    }
  }

  /** Log metrics, params and tags to a run (defaults such as timestamps are fixed now, so retries repeat them exactly). */
  logBatch(run: RunTarget, batch: LogBatchInput): Promise<void> {
    return this.write(() => ({ kind: 'log-batch', run: fixRun(run), batch: toWireBatch(batch) }));
  }

  /** Set one tag. */
  setTag(run: RunTarget, key: string, value: string): Promise<void> {
    return this.write(() => ({ kind: 'set-tag', run: fixRun(run), key, value }));
  }

  /** End a run with a status (default FINISHED) and end time (default now). */
  setTerminated(run: RunTarget, status: RunStatus = 'FINISHED', endTime = Date.now()): Promise<void> {
    return this.write(() => ({ kind: 'update-run', run: fixRun(run), status, endTime }));
  }

  /** Upload a local file as `artifactPath` (default: its name); during an outage the spool keeps a copy. */
  async logArtifact(run: RunTarget, localPath: string, artifactPath = path.basename(localPath)): Promise<void> {
    const target = fixRun(run);
    const write: SpooledWrite = { kind: 'upload-artifact', run: target, artifactPath, blob: '' };
    // The spool keeps its own copy: the step may delete or overwrite its file before MLflow is back.
    const copied = (id: string): SpooledWrite => {
      fs.copyFileSync(localPath, this.spool.blobPath(id));
      return { ...write, blob: path.basename(this.spool.blobPath(id)) };
    };
    if (this.queue.size > 0 || this.spool.hasPending()) {
      // As for any write: behind the waiting ones, in order, rather than a try that would wait out a hung
      // server's timeouts while the outage is already known.
      this.buffer(write, 'earlier writes are still waiting for MLflow', copied);
      this.schedule(0);
      return;
    }
    try {
      await this.client.logArtifactFile(await this.resolveRun(target), localPath, artifactPath);
    } catch (error) {
      this.failed(write, error, copied);
    }
  }

  /**
   * Deliver every buffered write, this process's and any other's left in the spool folder, oldest
   * first; stops early while MLflow is unreachable. Never rejects.
   */
  flush(): Promise<FlushResult> {
    // One flush at a time; a caller arriving during one waits for it and then runs its own, so
    // writes buffered after the running flush started are covered too.
    const previous = this.flushing ?? Promise.resolve(undefined);
    const next = previous.then(() => this.flushOnce());
    this.flushing = next;
    void next.finally(() => {
      if (this.flushing === next) this.flushing = undefined;
    });
    return next;
  }

  /** Stop background retries. Buffered writes stay in the spool folder for the next tracker. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async write(make: () => SpooledWrite): Promise<void> {
    let write: SpooledWrite;
    try {
      write = make();
    } catch (error) {
      this.warn(`[mlflow] MLflow write dropped: ${(error as Error).message}`);
      return;
    }
    if (this.queue.size > 0 || this.spool.hasPending()) {
      // Keep the order of writes while older ones (this process's or another's) wait: queue behind them.
      this.buffer(write, 'earlier writes are still waiting for MLflow');
      this.schedule(0);
      return;
    }
    try {
      await this.deliver(write);
    } catch (error) {
      this.failed(write, error);
    }
  }

  /**
   * A write failed: buffer it if a later attempt can succeed, else set it aside under `rejected/`.
   * `materialize` turns it into what the spool stores (artifact bytes are copied in first).
   */
  private failed(write: SpooledWrite, error: unknown, materialize: (id: string) => SpooledWrite = () => write): void {
    const reason = (error as Error).message;
    if (isRetryable(error)) {
      this.buffer(write, reason, materialize);
      this.schedule(this.retryIntervalMs);
      return;
    }
    let kept = '';
    try {
      kept = ` Kept in ${this.spool.reject(this.spool.newId(), reason, write)}.`;
    } catch {
      // Only for inspection; the warning below still says what was refused.
    }
    this.warn(
      `[mlflow] could not log ${describe(write)} and will not retry it; the pipeline goes on.${kept}\n  ${reason}`,
    );
  }

  private buffer(write: SpooledWrite, reason: string, materialize: (id: string) => SpooledWrite = () => write): void {
    const id = this.spool.newId();
    let where: string;
    let spooled = true;
    try {
      write = materialize(id);
      where = `spooled to ${this.spool.add(id, write)}`;
    } catch (error) {
      if (write.kind === 'upload-artifact') {
        this.warn(
          `[mlflow] MLflow write LOST: ${describe(write)} failed (${reason}) and could not be copied to the spool: ${(error as Error).message}`,
        );
        return;
      }
      where = `kept in memory only (spool folder unwritable: ${(error as Error).message}), lost if this process exits`;
      spooled = false;
    }
    this.queue.set(id, { id, write, attempts: 0, spooled });
    this.warn(
      `[mlflow] MLflow write buffered: ${describe(write)}, because ${reason}. ` +
        `It is ${where}; ${this.queue.size} write(s) pending, retried every ${this.retryIntervalMs / 1000}s ` +
        'and on flush(). The pipeline goes on.',
    );
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush().then((result) => {
        if (result.pending > 0) this.schedule(this.retryIntervalMs);
      });
    }, delayMs);
    this.timer.unref();
  }

  /**
   * Make the queue what the spool folder holds: queue the writes not queued yet (an earlier or another
   * process's), and forget spooled ones whose file is gone (another process delivered them; sending
   * them again would deliver them twice). Returns how many were added.
   */
  private loadSpool(): number {
    let added = 0;
    const onBadFile = (file: string, problem: string) =>
      this.warn(`[mlflow] unreadable spool file moved to ${file}: ${problem}`);
    const onDisk = new Set<string>();
    for (const entry of this.spool.list(onBadFile)) {
      onDisk.add(entry.id);
      if (this.queue.has(entry.id)) continue;
      this.queue.set(entry.id, { ...entry, attempts: 0, spooled: true });
      added += 1;
    }
    for (const [id, entry] of this.queue) if (entry.spooled && !onDisk.has(id)) this.queue.delete(id);
    return added;
  }

  private async flushOnce(): Promise<FlushResult> {
    const result: FlushResult = { delivered: 0, pending: 0, rejected: 0 };
    let unlock: (() => void) | undefined;
    try {
      // One deliverer per spool folder: two processes sending the same file would deliver it twice.
      unlock = this.spool.lockForDelivery();
      if (unlock === undefined) {
        result.pending = this.queue.size;
        return result;
      }
      this.loadSpool();
      const entries = [...this.queue.values()].sort((a, b) => a.id.localeCompare(b.id));
      for (const entry of entries) {
        const ageMs = Date.now() - this.spool.createdAt(entry.id);
        if (ageMs > this.maxAgeMs) {
          this.queue.delete(entry.id);
          const reason = `undelivered for ${(ageMs / 3_600_000).toFixed(1)} h, more than maxAgeMs (${this.maxAgeMs} ms)`;
          const file = this.spool.reject(entry.id, reason, entry.write);
          result.rejected += 1;
          this.warn(`[mlflow] gave up on buffered ${describe(entry.write)}: ${reason}. Kept in ${file}`);
          continue;
        }
        try {
          await this.deliver(entry.write);
        } catch (error) {
          entry.attempts += 1;
          // An outage (refused, 5xx/429, timeout): later writes would fail the same way, and sending
          // them past this one would break the order; keep all of them for the next flush.
          if (isRetryable(error)) break;
          this.queue.delete(entry.id);
          const file = this.spool.reject(entry.id, (error as Error).message, entry.write);
          result.rejected += 1;
          this.warn(
            `[mlflow] MLflow refused buffered ${describe(entry.write)}; it will not be retried. ` +
              `Kept in ${file}:\n  ${(error as Error).message}`,
          );
          continue;
        }
        this.queue.delete(entry.id);
        this.spool.remove(entry.id);
        result.delivered += 1;
      }
    } catch (error) {
      // The spool folder itself failed (deleted, permissions); the writes stay queued in memory.
      this.warn(`[mlflow] flushing ${this.spool.dir} failed: ${(error as Error).message}`);
    } finally {
      unlock?.();
    }
    result.pending = this.queue.size;
    if (result.delivered > 0) {
      this.warn(
        `[mlflow] delivered ${result.delivered} buffered MLflow write(s) to ${this.client.trackingUri}; ${result.pending} pending`,
      );
    }
    return result;
  }

  private async deliver(write: SpooledWrite): Promise<void> {
    switch (write.kind) {
      case 'ensure-run':
        await this.resolveRun(write.run);
        return;
      case 'log-batch':
        await this.client.logWireBatch(await this.resolveRun(write.run), write.batch);
        return;
      case 'set-tag':
        await this.client.setTag(await this.resolveRun(write.run), write.key, write.value);
        return;
      case 'update-run':
        await this.client.updateRun(await this.resolveRun(write.run), { status: write.status, endTime: write.endTime });
        return;
      case 'upload-artifact':
        await this.client.logArtifactFile(
          await this.resolveRun(write.run),
          path.join(this.spool.pendingDir, write.blob),
          write.artifactPath,
        );
        return;
    }
  }

  private async resolveRun(target: RunTarget): Promise<string> {
    if (typeof target === 'string') return target;
    const key = `${target.experimentName}\u0000${target.idempotencyKey}`;
    const known = this.runIds.get(key);
    if (known !== undefined) return known;
    const parentRunId = target.parent === undefined ? undefined : await this.resolveRun(target.parent);
    let experimentId = this.experimentIds.get(target.experimentName);
    if (experimentId === undefined) {
      experimentId = (await this.client.getOrCreateExperiment(target.experimentName)).experimentId;
      this.experimentIds.set(target.experimentName, experimentId);
    }
    const run = await this.client.findOrCreateRun({
      experimentId,
      idempotencyKey: target.idempotencyKey,
      name: target.name,
      tags: target.tags,
      parentRunId,
      startTime: target.startTime,
    });
    this.runIds.set(key, run.info.runId);
    return run.info.runId;
  }
}

/** A spec's start time is fixed at the first write, so a run created after an outage still starts when the step did. */
function withStartTime(spec: RunSpec, now: number): RunSpec {
  return {
    ...spec,
    startTime: spec.startTime ?? now,
    parent: spec.parent === undefined ? undefined : fixRun(spec.parent, now),
  };
}

function fixRun(run: RunTarget, now = Date.now()): RunTarget {
  return typeof run === 'string' ? run : withStartTime(run, now);
}

function describeRun(run: RunTarget): string {
  return typeof run === 'string'
    ? `run ${run}`
    : `run "${run.name}" (key ${run.idempotencyKey} in experiment "${run.experimentName}")`;
}

/** What a write is, in words, for warnings. */
function describe(write: SpooledWrite): string {
  switch (write.kind) {
    case 'ensure-run':
      return `creation of ${describeRun(write.run)}`;
    case 'log-batch':
      return (
        `log-batch to ${describeRun(write.run)} (${write.batch.metrics.length} metrics, ` +
        `${write.batch.params.length} params, ${write.batch.tags.length} tags)`
      );
    case 'set-tag':
      return `tag ${write.key}=${JSON.stringify(write.value)} on ${describeRun(write.run)}`;
    case 'update-run':
      return `status ${write.status} of ${describeRun(write.run)}`;
    case 'upload-artifact':
      return `artifact ${write.artifactPath} of ${describeRun(write.run)}`;
  }
}
