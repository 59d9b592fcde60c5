/**
 * Launch one compute step (`python -m csr_compute STEP --spec FILE`) as the leader of its own process
 * group, read its JSON-line events, and make sure that when it ends — or is aborted — nothing it
 * started is left running. Knows nothing of Temporal, so the worker's start-up probe can use it too.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { groupRunning, killGroup } from '../src/gpu/process-groups';
import { processIdentity } from '../src/gpu/process-identity';
import type { StepExit } from './exit-codes';

/** One JSON line a step printed on stdout (`progress`, `manifest`, `error`, `probe`, ...). */
export interface ComputeEvent {
  event: string;
  [field: string]: unknown;
}

/** What is needed to run a step. */
export interface ComputeProcessOptions {
  /** Python interpreter of the venv that has `csr_compute`. */
  python: string;
  step: string;
  specFile: string;
  /** stderr (and any stray non-JSON stdout) is appended here. */
  logFile: string;
  /** The child's complete environment. */
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Aborting kills the whole group; the run then rejects with `signal.reason` once the group is gone. */
  signal?: AbortSignal;
  /** Time between SIGTERM and SIGKILL. @default 10000 */
  killGraceMs?: number;
  /** Called once with the group leader's pid, before any event; a throw here kills the group. */
  onSpawn?: (pid: number) => void;
  onEvent?: (event: ComputeEvent) => void;
}

/** How the run ended. */
export interface ComputeProcessResult extends StepExit {
  pid: number;
  /** Manifest path reported by the step's `manifest` event, if any. */
  manifestEvent?: ComputeEvent;
}

const STDERR_TAIL_BYTES = 4096;

/** The last `bytes` of a file (empty if unreadable): the end of a log is where a crash explains itself. */
export function fileTail(file: string, bytes = STDERR_TAIL_BYTES): string {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    fs.readSync(fd, buffer, 0, length, size - length);
    const text = buffer.toString('utf8');
    // Start at a line boundary so the tail does not open mid-word (or mid-character).
    const newline = size > length ? text.indexOf('\n') : -1;
    return newline >= 0 ? text.slice(newline + 1) : text;
  } catch {
    return '';
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Run a step to its end (or until aborted) and report how it ended; never leaves a member of its group alive. */
export async function runComputeProcess(options: ComputeProcessOptions): Promise<ComputeProcessResult> {
  options.signal?.throwIfAborted();
  const killGraceMs = options.killGraceMs ?? 10_000;
  fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
  const logFd = fs.openSync(options.logFile, 'a');
  const child = spawn(options.python, ['-m', 'csr_compute', options.step, '--spec', options.specFile], {
    cwd: options.cwd,
    env: options.env,
    // Own process group: torch and data loaders fork, and a kill must reach all of them.
    detached: true,
    // stderr straight into the file: it survives a dying worker and costs the event loop nothing.
    stdio: ['ignore', 'pipe', logFd],
  });
  fs.closeSync(logFd);
  const spawned = new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid as number));
    child.once('error', reject);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  // 'close' comes once stdout is drained, which a forked grandchild holding the pipe can delay past 'exit'.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const pid = await spawned.catch((error: Error) => {
    throw new Error(`could not start ${options.python} for step ${options.step}: ${error.message}`);
  });

  let lastError: ComputeEvent | undefined;
  let manifestEvent: ComputeEvent | undefined;
  let callbackError: unknown;
  // Read now, while the child cannot have exited and been reaped: later kills check they hit this group.
  const leader = processIdentity(pid);
  let stopping: Promise<boolean> | undefined;
  const stop = () => (stopping ??= killGroup(pid, killGraceMs, leader));
  const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream, crlfDelay: Infinity });
  lines.on('line', (line) => {
    let event: ComputeEvent | undefined;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && typeof (parsed as ComputeEvent).event === 'string') {
        event = parsed as ComputeEvent;
      }
    } catch {
      // A library that prints to stdout breaks the contract but not the run; keep its text in the log.
    }
    if (event === undefined) {
      try {
        fs.appendFileSync(options.logFile, `[stdout] ${line}\n`);
      } catch (error) {
        // A throw in this listener would be uncaught and end the worker with every step it runs; a full
        // disk instead ends this step (its own writes would fail next), reported once the group is gone.
        callbackError ??= error;
        void stop();
      }
      return;
    }
    if (event.event === 'error') lastError = event;
    if (event.event === 'manifest') manifestEvent = event;
    try {
      options.onEvent?.(event);
    } catch (error) {
      callbackError ??= error;
    }
  });

  const onAbort = () => void stop();
  try {
    options.onSpawn?.(pid);
  } catch (error) {
    await stop();
    await closed;
    throw error;
  }
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  const end = await exited;
  options.signal?.removeEventListener('abort', onAbort);
  // The leader is gone, but anything it forked may linger and hold the GPU: clear the group too.
  if (stopping) await stopping;
  else if (groupRunning(pid)) await stop();
  await closed;
  if (options.signal?.aborted) throw options.signal.reason;
  if (callbackError !== undefined) throw callbackError;
  return {
    step: options.step,
    pid,
    code: end.code,
    signal: end.signal,
    errorMessage: typeof lastError?.message === 'string' ? lastError.message : undefined,
    errorKind: typeof lastError?.kind === 'string' ? lastError.kind : undefined,
    stderrTail: fileTail(options.logFile),
    logFile: options.logFile,
    manifestEvent,
  };
}
