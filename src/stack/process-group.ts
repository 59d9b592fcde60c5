/**
 * Start long-lived processes in their own process group, with a pid file and a log file, and stop
 * them by killing the whole group. Node's child_process has no notion of "this process and all it
 * started", which is what both the servers (MLflow forks gunicorn/uvicorn workers) and the compute
 * steps (torch may fork) need, hence this small module.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { groupRunning, killGroup, processRunning } from '../gpu/process-groups';

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

/** The pid recorded in a pid file if that process still lives, else undefined (stale files are removed). */
export function livePid(pidFile: string): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) return pid;
  fs.rmSync(pidFile, { force: true });
  return undefined;
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
  fs.writeFileSync(options.pidFile, `${child.pid}\n`);
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
  const pid = livePid(pidFile);
  if (pid !== undefined) await stopGroup(pid, graceMs);
  fs.rmSync(pidFile, { force: true });
  return pid !== undefined;
}
