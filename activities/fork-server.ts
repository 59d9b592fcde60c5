/**
 * The worker's side of a warm compute process: one `python -m csr_compute.fork_server` per compute worker,
 * started with the worker and restarted whenever it dies, that forks a child per step
 * (compute/csr_compute/fork_server.py explains the child and the protocol).
 *
 * Why: a spawned step pays interpreter start, torch and transformers imports (seconds) before it computes;
 * a forked one pays a fork. Everything else stays as `runComputeProcess` does it for a spawned child: the
 * step is its own process-group leader (killed as a group on cancel, stall or timeout), its JSON lines are
 * read from its stdout (here the socket the server handed it), its stderr goes to the step's log, its
 * identity (pid + start time, reported by the server before the child may run) guards every kill, and its
 * exit code maps to the same failures.
 *
 * A step that comes while the server still imports waits for it (up to `readyWaitMs`: a spawn would pay the
 * same imports). When the server cannot serve a step (broken, restarting, stopped, or refused: e.g. the
 * step's environment differs in a variable read at import time), `launch` answers `undefined` and the
 * caller spawns the step as before. It answers `undefined` only when the server certainly did not start the step: once a request
 * may have reached a child, any failure is a retryable error instead, so a step is never run twice at once.
 *
 * Switch: `CSR_FORK_SERVER=0` in the worker's environment (or `forkServer: false` in `startWorkers`) turns
 * the servers off; every step is then spawned.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { type ProcessIdentity, bootId } from '../src/gpu/process-identity';

/** What starting a worker's fork server takes. */
export interface ForkServerOptions {
  /** Python interpreter of the venv that has `csr_compute`. */
  python: string;
  /** The server's environment: the worker's (its children's differ only in CUDA_VISIBLE_DEVICES, CSR_*, MLFLOW_*). */
  env: NodeJS.ProcessEnv;
  /** The server's own stderr (its start-up and anything it could not do). */
  logFile: string;
  /** Name in log lines and the socket's file name (`gpu-0`, `stand-in-1`). */
  name: string;
  /**
   * Import only what the steps without torch need (curate, plot: `--light`), for the CPU worker: a fraction of a
   * second and of the memory. Any other step still runs, importing the rest in its child. @default false
   */
  light?: boolean;
  cwd?: string;
  /** Wait after the server died before starting it again. @default 1000 */
  restartDelayMs?: number;
  /**
   * How long a step waits for a server that is still importing (a spawn would pay the same imports, on a
   * CPU that the server's imports share) before it is spawned. Not waited for after 3 starts in a row
   * that never got ready. @default 30000
   */
  readyWaitMs?: number;
  /** Where status lines go. @default console.log */
  log?: (line: string) => void;
}

/** What a step run needs from the server. */
export interface ForkRequest {
  step: string;
  specFile: string;
  logFile: string;
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

/** How a launched step ended: its exit, or `lost` when the connection ended without one (the server died). */
export interface LaunchedExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  lost?: string;
}

/** A step running as a forked child: what `runComputeProcess` reads and kills. */
export interface ForkedStep {
  pid: number;
  /** As recorded by the server before the child could run (so a fast exit cannot hide it). */
  leader: ProcessIdentity;
  /** Receives each line the step prints on stdout (the server's framing taken out), those before the call too. */
  onLine(listener: (line: string) => void): void;
  /** Resolves once the server reported the child's end, or the connection ended without that report. */
  exited: Promise<LaunchedExit>;
  /** Resolves once the connection is closed: every holder of the child's stdout is gone. */
  closed: Promise<void>;
}

const EXIT_EVENT = 'fork-server-exit';

/** One worker's fork server: started at once, restarted after each death, until `stop()`. */
export class ForkServer {
  private readonly folder: string;
  readonly socketPath: string;
  private child: ChildProcess | undefined;
  private ready = false;
  /** Starts in a row that ended before the server got ready: a broken server is not waited for. */
  private failedStarts = 0;
  /** The server said it cannot fork safely here: it is not restarted. */
  private unusable = false;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readyWaiters: (() => void)[] = [];
  private readonly log: (line: string) => void;
  /** Steps running here: each is told when the server dies (reported lost unless its exit record comes first). */
  private readonly running = new Set<() => void>();
  /** Starts of the server so far (a restart adds one). */
  starts = 0;

  constructor(private readonly options: ForkServerOptions) {
    // A private folder (0700): only this user can ask the server to run something.
    this.folder = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-fork-'));
    this.socketPath = path.join(this.folder, `${options.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.sock`);
    this.log = options.log ?? console.log;
    this.start();
  }

  /** True while a started server accepts steps. */
  get isReady(): boolean {
    return this.ready && !this.stopped;
  }

  /** The server's pid, while one runs. */
  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  /** Resolves true once the server is ready, false after `timeoutMs`, on `stop()` or when `signal` aborts. */
  whenReady(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.isReady) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve(this.isReady);
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      this.readyWaiters.push(done);
    });
  }

  private start(): void {
    if (this.stopped) return;
    this.starts += 1;
    fs.mkdirSync(path.dirname(this.options.logFile), { recursive: true });
    const logFd = fs.openSync(this.options.logFile, 'a');
    // --room: blanks in the server's command line, which each forked step overwrites with its own
    // (`python -m csr_compute STEP --spec FILE`), so that ps, pgrep and /proc show the step, not the server.
    const args = ['-u', '-m', 'csr_compute.fork_server', '--socket', this.socketPath, '--room', ' '.repeat(4096)];
    if (this.options.light) args.push('--light');
    const child = spawn(this.options.python, args, {
      cwd: this.options.cwd,
      env: this.options.env,
      // Its own group: a Ctrl-C at the worker's terminal reaches the worker, which stops the server itself.
      detached: true,
      stdio: ['ignore', 'pipe', logFd],
    });
    fs.closeSync(logFd);
    this.child = child;
    child.once('error', (error) => this.log(`fork server ${this.options.name}: could not start: ${error.message}`));
    const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream, crlfDelay: Infinity });
    lines.on('line', (line) => {
      let said: { ready?: number; unusable?: string; warm_s?: number } = {};
      try {
        said = JSON.parse(line) as typeof said;
      } catch {
        return;
      }
      if (said.ready !== undefined && child === this.child) {
        this.ready = true;
        this.failedStarts = 0;
        this.log(`fork server ${this.options.name}: ready (pid ${said.ready}, imports took ${said.warm_s} s)`);
        this.readyWaiters.splice(0).forEach((wake) => wake());
      } else if (said.unusable) {
        // It would be as unusable after a restart (e.g. an import initialised CUDA): this worker spawns.
        this.unusable = true;
        this.log(`fork server ${this.options.name}: ${said.unusable}`);
      }
    });
    child.once('exit', (code, signal) => {
      if (child !== this.child) return;
      if (!this.ready) this.failedStarts += 1;
      this.ready = false;
      // Its children die with it (their parent watchdog), but the worker does not wait on that: each running
      // step is reported lost, so the activity kills its group now. A second lets an exit record already on
      // its way (a child that ended just before the server) win over that report.
      for (const lose of this.running) setTimeout(lose, 1000);
      if (this.stopped || this.unusable) return;
      // A server that keeps dying before it is ready is retried ever more slowly (at most once a minute).
      const delay = Math.min((this.options.restartDelayMs ?? 1000) * 2 ** this.failedStarts, 60_000);
      this.log(
        `fork server ${this.options.name} (pid ${child.pid}) ended (${signal ?? `code ${code}`}); ` +
          `steps are spawned meanwhile, restarting in ${delay / 1000} s (log: ${this.options.logFile})`,
      );
      this.restartTimer = setTimeout(() => this.start(), delay);
    });
  }

  /**
   * Run a step as a forked child; `undefined` when the server did not start it (not ready, refused,
   * unreachable), so the caller spawns it instead. Rejects when the request may have reached a child.
   */
  async launch(request: ForkRequest, signal?: AbortSignal): Promise<ForkedStep | undefined> {
    if (!this.isReady && !this.stopped && !this.unusable && this.failedStarts < 3) {
      await this.whenReady(this.options.readyWaitMs ?? 30_000, signal);
    }
    if (!this.isReady || signal?.aborted) return undefined;
    const socket = net.createConnection(this.socketPath);
    const connected = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true));
      socket.once('error', () => resolve(false));
    });
    if (!connected) {
      socket.destroy();
      return undefined; // nothing was sent: the server cannot have started anything
    }
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined); // an error ends in 'close', which is what the reader waits for
    // One reader for the whole connection: the server's answer is its first line, the child's stdout follows
    // (possibly in the same chunk), and the server's exit record is the last line.
    const lines = readline.createInterface({ input: socket, crlfDelay: Infinity });
    const stepLines = new LineBuffer();
    let report: (exit: LaunchedExit) => void = () => undefined;
    const exited = new Promise<LaunchedExit>((resolve) => (report = resolve));
    let answer: { started?: number; start?: string | null; refused?: string } | undefined;
    const answered = new Promise<void>((resolve) => {
      lines.on('line', (line) => {
        if (answer === undefined) {
          try {
            answer = JSON.parse(line) as typeof answer;
          } catch {
            answer = {};
          }
          resolve();
          return;
        }
        if (line.length === 0) return; // the newline the server puts before its exit record
        if (line.startsWith(`{"event": "${EXIT_EVENT}"`)) {
          try {
            const end = JSON.parse(line) as { code: number | null; signal: NodeJS.Signals | null };
            report({ code: end.code, signal: end.signal });
            return;
          } catch {
            // Something else that looks like the record: an ordinary line.
          }
        }
        stepLines.push(line);
      });
      void closed.then(() => resolve());
    });
    socket.write(
      `${JSON.stringify({
        step: request.step,
        spec: request.specFile,
        log: request.logFile,
        env: Object.fromEntries(Object.entries(request.env).filter(([, v]) => v !== undefined)),
        cwd: request.cwd ?? null,
      })}\n`,
    );
    await answered;
    if (answer?.refused !== undefined) {
      socket.destroy();
      this.log(`fork server ${this.options.name}: ${request.step} spawned instead: ${answer.refused}`);
      return undefined;
    }
    if (typeof answer?.started !== 'number') {
      socket.destroy();
      // The server may have forked a child that now waits for a release it will not get (it then exits
      // unrun), but this side cannot know: fail the attempt (retryable) rather than risk running the step twice.
      throw new Error(`fork server ${this.options.name}: no answer to ${request.step}'s request (did the server die?)`);
    }
    const pid = answer.started;
    const leader: ProcessIdentity = { pid, start: answer.start ?? null, boot: answer.start ? bootId() : null };
    const lose = () =>
      report({ code: null, signal: null, lost: `the fork server ended before step ${request.step} (pid ${pid}) did` });
    this.running.add(lose);
    void closed.then(() => {
      this.running.delete(lose);
      lose();
    });
    return { pid, leader, onLine: (listener) => stepLines.attach(listener), exited, closed };
  }

  /** Stop the server (running steps are the activities' to kill) and remove its socket folder. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ready = false;
    clearTimeout(this.restartTimer);
    this.readyWaiters.splice(0).forEach((wake) => wake());
    const child = this.child;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      // The server leads its own group: whatever else runs in it (a wrapper's helpers) goes with it.
      const signalGroup = (signal: NodeJS.Signals) => {
        try {
          process.kill(-(child.pid as number), signal);
        } catch {
          // gone meanwhile
        }
      };
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
      signalGroup('SIGKILL'); // members that outlived the leader
    }
    fs.rmSync(this.folder, { recursive: true, force: true });
  }
}

/** Lines kept until their reader attaches: a step may print before `launch` has returned. */
export class LineBuffer {
  private held: string[] = [];
  private listener: ((line: string) => void) | undefined;

  push(line: string): void {
    if (this.listener) this.listener(line);
    else this.held.push(line);
  }

  attach(listener: (line: string) => void): void {
    this.listener = listener;
    for (const line of this.held.splice(0)) listener(line);
  }
}
