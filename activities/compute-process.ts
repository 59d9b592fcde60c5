/**
 * Launch one compute step (`python -m csr_compute STEP --spec FILE`) as the leader of its own process
 * group, read its JSON-line events, and make sure that when it ends — or is aborted — nothing it
 * started is left running. Knows nothing of Temporal, so the worker's start-up probe can use it too.
 *
 * Given the worker's `forkServer`, the step is forked by that warm process instead of spawned (see
 * fork-server.ts); everything below the launch — events, kills, exit — is the same for both.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { groupRunning, killGroup } from '../src/gpu/process-groups';
import { type ProcessIdentity, processIdentity } from '../src/gpu/process-identity';
import type { StepExit } from './exit-codes';
import { type ForkServer, type LaunchedExit, LineBuffer } from './fork-server';

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
  /** The worker's warm process: the step is forked there when it can be, else spawned. @default spawn */
  forkServer?: ForkServer;
}

/** How the run ended. */
export interface ComputeProcessResult extends StepExit {
  pid: number;
  /** Manifest path reported by the step's `manifest` event, if any. */
  manifestEvent?: ComputeEvent;
  /** How the process was started. */
  via: 'fork-server' | 'spawn';
}

/** A started step process, however it was started. */
interface Launched {
  pid: number;
  /** Identity of the group leader, read while it could not have exited yet. */
  leader: ProcessIdentity | undefined;
  onLine(listener: (line: string) => void): void;
  exited: Promise<LaunchedExit>;
  /** Its stdout is drained: a forked grandchild holding it can delay this past `exited`. */
  closed: Promise<void>;
  via: 'fork-server' | 'spawn';
}

async function spawnStep(options: ComputeProcessOptions): Promise<Launched> {
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
  const exited = new Promise<LaunchedExit>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const pid = await spawned.catch((error: Error) => {
    throw new Error(`could not start ${options.python} for step ${options.step}: ${error.message}`);
  });
  const lines = new LineBuffer();
  readline
    .createInterface({ input: child.stdout as NodeJS.ReadableStream, crlfDelay: Infinity })
    .on('line', (line) => lines.push(line));
  // Read now, while the child cannot have exited and been reaped: later kills check they hit this group.
  const leader = processIdentity(pid);
  return { pid, leader, onLine: (listener) => lines.attach(listener), exited, closed, via: 'spawn' };
}

async function launchStep(options: ComputeProcessOptions): Promise<Launched> {
  const forked = await options.forkServer?.launch(
    { step: options.step, specFile: options.specFile, logFile: options.logFile, env: options.env, cwd: options.cwd },
    options.signal,
  );
  if (forked) return { ...forked, via: 'fork-server' };
  options.signal?.throwIfAborted(); // cancelled while waiting for the server: start nothing
  return spawnStep(options);
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
  const launched = await launchStep(options);
  const { pid, leader, exited, closed } = launched;

  let lastError: ComputeEvent | undefined;
  let manifestEvent: ComputeEvent | undefined;
  let callbackError: unknown;
  let stopping: Promise<boolean> | undefined;
  const stop = () => (stopping ??= killGroup(pid, killGraceMs, leader));
  launched.onLine((line) => {
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
    // A lost fork server says so, unless the step explained its own end first.
    errorMessage: typeof lastError?.message === 'string' ? lastError.message : end.lost,
    errorKind: typeof lastError?.kind === 'string' ? lastError.kind : end.lost ? 'fork_server_lost' : undefined,
    stderrTail: fileTail(options.logFile),
    logFile: options.logFile,
    manifestEvent,
    via: launched.via,
  };
}
