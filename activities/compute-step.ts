/**
 * The activity that runs one compute step: skip it if an earlier run finished it, take the worker's
 * GPU lease(s), launch the child in its own process group, heartbeat on a timer for its whole life,
 * turn its exit into a Temporal outcome, and kill the whole group on cancellation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { CsrEnv } from '../src/env';
import type { GpuLeases } from '../src/gpu/leases';
import { type ComputeEvent, runComputeProcess } from './compute-process';
import type { ForkServer } from './fork-server';
import { ComputeFailureType, failureForExit } from './exit-codes';
import { diskErrorCode, noSpaceFailure } from './disk-errors';
import { withInputs } from './input-hashes';
import { DEFAULT_STALL_TIMEOUT_MS, StallWatchdog } from './stall-watchdog';
import { type LoadedManifest, flatNumbers, manifestIsFor, readManifest, specText, staleReason } from './manifest';
import type { ComputeStepInput, StepHeartbeat, StepResult } from './types';
import { abortableSleep } from '../src/shared/abortable-sleep';
import { writeFileAtomic } from '../src/shared/atomic-write';

/** What the compute-step activity needs from its worker. */
export interface ComputeStepDeps {
  env: Pick<CsrEnv, 'python' | 'venv'>;
  /** GPU ids this worker serves; empty on CPU workers and CPU stand-ins (the child then sees no GPU). */
  gpus: readonly string[];
  /** The host's lease table; required when `gpus` is not empty. */
  leases?: GpuLeases;
  /** Environment the worker pins for every child (e.g. CSR_TORCH_THREADS of a stand-in). */
  workerEnv?: Record<string, string>;
  /** Worker id, for logs. */
  workerId: string;
  /** Default heartbeat interval. @default 10000 */
  heartbeatEveryMs?: number;
  /** Grace between SIGTERM and SIGKILL on cancellation. @default 10000 */
  killGraceMs?: number;
  /** The worker's warm process that forks steps (fork-server.ts); without it, or while it is down, steps spawn. */
  forkServer?: ForkServer;
}

const PINNED_ENV = ['CUDA_VISIBLE_DEVICES'];

function badSpec(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, ComputeFailureType.badSpec);
}

interface CheckedInput {
  outDir: string;
  label: string;
  gpus: string[];
  heartbeatEveryMs: number;
  stallTimeoutMs: number;
}

function checkInput(input: ComputeStepInput, deps: ComputeStepDeps): CheckedInput {
  if (typeof input?.step !== 'string' || !/^[a-z][a-z0-9-]*$/.test(input.step)) {
    throw badSpec(`step: expected a compute step name, got ${JSON.stringify(input?.step)}`);
  }
  const { spec } = input;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw badSpec(`${input.step}: spec: expected a JSON object, got ${JSON.stringify(spec)}`);
  }
  const outDir = spec.out_dir;
  if (typeof outDir !== 'string' || !path.isAbsolute(outDir)) {
    throw badSpec(`${input.step}: spec.out_dir: expected an absolute path, got ${JSON.stringify(outDir)}`);
  }
  for (const [key, value] of Object.entries(input.env ?? {})) {
    if (PINNED_ENV.includes(key)) {
      throw badSpec(`${input.step}: env.${key}: the worker pins this; route the step to the right queue instead`);
    }
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || typeof value !== 'string') {
      throw badSpec(
        `${input.step}: env.${key}: expected a variable name with a string value, got ${JSON.stringify(value)}`,
      );
    }
  }
  const every = input.heartbeatEveryMs ?? deps.heartbeatEveryMs ?? 10_000;
  if (!Number.isFinite(every) || every < 100) {
    throw badSpec(`${input.step}: heartbeatEveryMs: expected a number >= 100, got ${JSON.stringify(every)}`);
  }
  let gpus: string[] = [];
  if (deps.gpus.length > 0) {
    const count = input.gpuCount ?? deps.gpus.length;
    if (!Number.isInteger(count) || count < 1) {
      throw badSpec(`${input.step}: gpuCount: expected an integer >= 1, got ${JSON.stringify(input.gpuCount)}`);
    }
    if (count > deps.gpus.length) {
      throw ApplicationFailure.nonRetryable(
        `${input.step}: needs ${count} GPUs but worker ${deps.workerId} serves ${deps.gpus.length} ` +
          `(${deps.gpus.join(',')}); send multi-GPU steps to a host queue (hostQueue(host))`,
        ComputeFailureType.wrongQueue,
      );
    }
    gpus = deps.gpus.slice(0, count);
  }
  const stall = input.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  if (!Number.isFinite(stall) || stall < 100) {
    throw badSpec(`${input.step}: stallTimeoutMs: expected a number >= 100, got ${JSON.stringify(stall)}`);
  }
  return { outDir, label: input.label ?? input.step, gpus, heartbeatEveryMs: every, stallTimeoutMs: stall };
}

function writeSpecFile(outDir: string, spec: Record<string, unknown>): string {
  const file = path.join(outDir, 'spec.json');
  // specText: the bytes whose sha256 the manifest records and reuse compares.
  writeFileAtomic(file, specText(spec));
  return file;
}

const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

function resultOf(
  input: ComputeStepInput,
  outDir: string,
  loaded: LoadedManifest | undefined,
  skipped: boolean,
  attempt: number,
  started: number,
): StepResult {
  const manifest = loaded?.manifest;
  const total = num(manifest?.items_total) ?? 0;
  return {
    step: input.step,
    outDir,
    manifestSha256: loaded?.sha256 ?? null,
    itemsTotal: total,
    // A skipped step computed nothing this time: every item is reused from the earlier run.
    itemsReused: skipped ? total : (num(manifest?.items_reused) ?? 0),
    itemsComputed: skipped ? 0 : (num(manifest?.items_computed) ?? 0),
    stats: flatNumbers(manifest?.stats),
    skipped,
    attempt,
    wallSeconds: Math.round((Date.now() - started) / 100) / 10,
  };
}

/** Build the `runComputeStep` activity around a worker's dependencies. */
export function createRunComputeStep(deps: ComputeStepDeps): (input: ComputeStepInput) => Promise<StepResult> {
  if (deps.gpus.length > 0 && deps.leases === undefined) {
    throw new TypeError(`worker ${deps.workerId}: serves GPUs ${deps.gpus.join(',')} but has no lease table`);
  }
  return async function runComputeStep(input: ComputeStepInput): Promise<StepResult> {
    const started = Date.now();
    const checked = checkInput(input, deps);
    const { outDir, label, gpus } = checked;
    // The spec as run: with the content hashes of the upstream manifests it reads (inputs by content).
    const spec = withInputs(input.spec);
    const ctx = Context.current();
    const { attempt } = ctx.info;
    const signal = ctx.cancellationSignal;
    const beat: StepHeartbeat = {
      done: null,
      total: null,
      reused: null,
      rate: null,
      eta_s: null,
      unit: null,
      step: input.step,
      label,
      attempt,
      pid: null,
      phase: 'checking',
      gpus,
    };
    const send = () => ctx.heartbeat({ ...beat });
    // A timer, not the child's output, keeps the heartbeat going: loading a model or saving a
    // checkpoint prints nothing for minutes and must not look like a dead worker.
    send();
    const timer = setInterval(send, checked.heartbeatEveryMs);
    let watchdog: StallWatchdog | undefined;
    let busy = false;
    try {
      // Each pass: reuse a finished result, or launch; a launch that finds the folder in use by another
      // live step process (a stale attempt, a second run) waits here, outside the retry budget, and looks again.
      for (let busyWaitMs = 2000; ; busyWaitMs = Math.min(busyWaitMs * 2, 60_000)) {
        const earlier = readManifest(outDir);
        if (earlier !== undefined) {
          const why = await staleReason(outDir, spec, earlier, signal);
          if (why === undefined) {
            ctx.log.info(`${label}: already done in ${outDir} (manifest matches spec and files); skipped`);
            return resultOf(input, outDir, earlier, true, attempt, started);
          }
          ctx.log.info(`${label}: earlier output in ${outDir} is not reusable (${why}); running the step`);
        }

        if (gpus.length > 0) {
          beat.phase = 'waiting-for-gpu';
          send();
          await deps.leases?.acquire(gpus, signal);
        }
        try {
          const specFile = writeSpecFile(outDir, spec);
          const logFile = path.join(outDir, 'logs', `${input.step}-attempt-${attempt}.log`);
          const cuda = gpus.join(',');
          fs.mkdirSync(path.dirname(logFile), { recursive: true });
          fs.appendFileSync(
            logFile,
            `=== ${new Date().toISOString()} ${label} attempt ${attempt} on ${deps.workerId} ` +
              `(CUDA_VISIBLE_DEVICES=${JSON.stringify(cuda)}) ===\n`,
          );
          beat.phase = 'running';
          watchdog = new StallWatchdog(checked.stallTimeoutMs, label);
          const dog = watchdog;
          const run = await runComputeProcess({
            python: deps.env.python,
            step: input.step,
            specFile,
            logFile,
            env: {
              ...process.env,
              ...deps.workerEnv,
              ...input.env,
              CUDA_VISIBLE_DEVICES: cuda,
              PYTHONUNBUFFERED: '1',
            },
            // Cancellation by Temporal or a stall: either kills the whole group.
            signal: AbortSignal.any([signal, dog.signal]),
            killGraceMs: deps.killGraceMs,
            forkServer: deps.forkServer,
            onSpawn: (pid) => {
              dog.start();
              beat.pid = pid;
              if (gpus.length > 0) deps.leases?.setPid(gpus, pid);
              send();
            },
            onEvent: (event) => {
              dog.touch(); // any event line: the step is alive
              if (event.event !== 'progress') return;
              updateProgress(beat, event);
              send();
            },
          });
          if (run.errorKind === 'busy') {
            ctx.log.warn(`${label}: ${run.errorMessage ?? `${outDir} is in use`}; looking again in ${busyWaitMs / 1000} s`);
            beat.phase = 'waiting-for-folder';
            beat.pid = null;
            busy = true;
          } else {
            const failure = failureForExit(run);
            if (failure) throw failure;
          }
        } finally {
          // Only reached once the child's whole group is gone, so the next user of the GPU meets no survivor.
          if (gpus.length > 0) deps.leases?.release(gpus);
        }
        if (busy) {
          // The GPU is given back meanwhile: the writer we wait for runs elsewhere.
          watchdog?.stop();
          await abortableSleep(busyWaitMs, signal);
          busy = false;
          continue;
        }

        const loaded = readManifest(outDir);
        if (loaded === undefined && input.expectManifest !== false) {
          throw ApplicationFailure.nonRetryable(
            `${input.step}: exited 0 but wrote no ${path.join(outDir, 'manifest.json')}; ` +
              'a step must call write_manifest last (see compute/csr_compute/contract.py)',
            ComputeFailureType.noManifest,
          );
        }
        if (loaded && !manifestIsFor(loaded, spec)) {
          ctx.log.warn(`${label}: manifest spec_hash differs from the spec's hash; a resumed run will redo this step`);
        }
        return resultOf(input, outDir, loaded, false, attempt, started);
      }
    } catch (error) {
      if (watchdog?.fired) throw watchdog.signal.reason;
      const code = diskErrorCode(error);
      if (code !== undefined) throw noSpaceFailure(label, error as NodeJS.ErrnoException, outDir);
      throw error;
    } finally {
      clearInterval(timer);
      watchdog?.stop();
    }
  };
}

function updateProgress(beat: StepHeartbeat, event: ComputeEvent): void {
  beat.done = num(event.done);
  beat.total = num(event.total);
  beat.reused = num(event.reused);
  beat.rate = num(event.rate);
  beat.eta_s = num(event.eta_s);
  beat.unit = typeof event.unit === 'string' ? event.unit : null;
}
