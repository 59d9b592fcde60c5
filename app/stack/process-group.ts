/**
 * Start long-lived processes in their own process group, with a pid file and a log file, and stop
 * them by killing the whole group. Node's child_process has no notion of "this process and all it
 * started", which is what both the servers (MLflow forks gunicorn/uvicorn workers) and the compute
 * steps (torch may fork) need, hence this small module.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { groupRunning, killGroup, processRunning } from '../../src/gpu/process-groups';
import {
  type ProcessIdentity,
  isSameProcess,
  parseIdentity,
  processIdentity,
  processStartedAtMs,
} from '../../src/gpu/process-identity';

/** What is needed to start a detached, logged, pid-filed process. */
export interface DetachedProcessOptions {
  command: string;
  args: string[];
  /** Pid file; its presence with a live pid means "running". */
  pidFile: string;
  /** Log file (stdout and stderr appended). */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** True while a process with this pid runs (a zombie does not count). */
export const isAlive = processRunning;

/**
 * The process a pid file names, if that very process still lives (same pid, start time and boot);
 * else undefined, and the stale file is removed. A pid file of an older version holds a bare pid: it
 * is trusted only if that process started before the file was written (a later one reused the pid).
 */
export function liveProcess(pidFile: string): ProcessIdentity | undefined {
  let text: string;
  let writtenMs: number;
  try {
    text = fs.readFileSync(pidFile, 'utf8').trim();
    writtenMs = fs.statSync(pidFile).mtimeMs;
  } catch {
    return undefined;
  }
  const recorded = parseIdentity(text);
  if (recorded !== undefined && isAlive(recorded.pid) && isSameProcess(recorded)) return recorded;
  const bare = /^\d+$/.test(text) ? Number(text) : undefined;
  if (recorded === undefined && bare !== undefined && bare > 0 && isAlive(bare)) {
    const startedMs = processStartedAtMs(bare);
    // 2 s of slack: the file is written just after the spawn, and btime is rounded to the second.
    if (startedMs === undefined || startedMs <= writtenMs + 2000) return processIdentity(bare);
  }
  fs.rmSync(pidFile, { force: true });
  return undefined;
}

/** The pid of {@link liveProcess}. */
export function livePid(pidFile: string): number | undefined {
  return liveProcess(pidFile)?.pid;
}

/** Start a process in a new process group that outlives its parent; returns its pid. */
export function startDetached(options: DetachedProcessOptions): number {
  fs.mkdirSync(path.dirname(options.pidFile), { recursive: true });
  fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
  const log = fs.openSync(options.logFile, 'a');
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${options.command}`);
  child.unref();
  // pid + start time + boot id: a later reader can tell this process from one that reuses its pid.
  const identity = processIdentity(child.pid) ?? { pid: child.pid, start: null, boot: null };
  fs.writeFileSync(options.pidFile, `${JSON.stringify(identity)}\n`);
  return child.pid;
}

/**
 * True while a member of the group still runs (zombies excluded: an orphaned member stays a zombie
 * until PID 1 reaps it, which never happens where the worker itself is PID 1, as in a container).
 */
export const groupAlive = groupRunning;

/** Stop a process group: SIGTERM, SIGKILL after `graceMs`, and wait until no member runs. */
export const stopGroup = killGroup;

/** Stop the process of a pid file (if it lives) and remove the file. Returns true if one was stopped. */
export async function stopPidFile(pidFile: string, graceMs?: number): Promise<boolean> {
  const recorded = liveProcess(pidFile);
  const stopped = recorded !== undefined && (await stopGroup(recorded.pid, graceMs, recorded));
  fs.rmSync(pidFile, { force: true });
  return stopped;
}
