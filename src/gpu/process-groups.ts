/**
 * Killing the process group of a compute step and waiting until none of its members still runs.
 *
 * `kill(-pgid, 0)` alone cannot tell when a group is gone: members orphaned by the leader's death are
 * reparented to PID 1 and stay zombies until PID 1 reaps them, which in a container may be late or
 * never (a minimal init, or the worker itself as PID 1). A zombie holds no GPU memory and runs no
 * code, so "gone" here means "no member that is not a zombie", read from /proc on Linux.
 */
import * as fs from 'node:fs';
import { type ProcessIdentity, bootId, processIdentity } from './process-identity';

function signalQuietly(target: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    if (code === 'EPERM') return true;
    throw error;
  }
}

/** A signal the kernel refused (EPERM): the group belongs to another user, and looping would not change that. */
export class KillNotPermittedError extends Error {
  constructor(readonly pgid: number) {
    super(
      `not permitted to signal process group ${pgid} (EPERM: it runs as another user); ` +
        `stop it as its owner or as root (kill -TERM -- -${pgid})`,
    );
    this.name = 'KillNotPermittedError';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return;
    if (code === 'EPERM') throw new KillNotPermittedError(pgid);
    throw error;
  }
}

/**
 * True while process group `leader.pid` is still the group that `leader` started. A live leader must be
 * the recorded process (same start time and boot): a reused pid is someone else's. A dead leader's
 * surviving members are still its group, because the kernel never hands out a pid that is some live
 * group's id, so no newcomer can have taken that group id meanwhile; after a reboot nothing of it lives.
 */
export function groupStartedBy(leader: ProcessIdentity): boolean {
  const now = processIdentity(leader.pid);
  if (now !== undefined) return now.start === leader.start && now.boot === leader.boot;
  return leader.boot === bootId();
}

/**
 * State letter (R, S, D, Z, ...), parent pid and process group of a process, from /proc; undefined when
 * the pid does not exist or on other systems.
 */
export function procState(pid: number | string): { state: string; ppid: number; pgrp: number } | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses; the fields after its closing ')' do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '?', ppid: Number(fields[1]), pgrp: Number(fields[2]) };
}

const hasProc = process.platform === 'linux' && fs.existsSync('/proc/self/stat');

/** True while `pid` exists and is not a zombie. */
export function processRunning(pid: number): boolean {
  if (!signalQuietly(pid, 0)) return false;
  if (!hasProc) return true;
  const found = procState(pid);
  return found !== undefined && found.state !== 'Z' && found.state !== 'X';
}

/** Pids of the members of process group `pgid` that are not zombies. */
export function liveGroupMembers(pgid: number): number[] {
  if (!signalQuietly(-pgid, 0)) return [];
  if (!hasProc) return [pgid];
  const members: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const found = procState(entry);
    if (found && found.pgrp === pgid && found.state !== 'Z' && found.state !== 'X') members.push(Number(entry));
  }
  return members;
}

/** True while any member of process group `pgid` still runs. */
export function groupRunning(pgid: number): boolean {
  return liveGroupMembers(pgid).length > 0;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * SIGTERM the group, SIGKILL it after `graceMs`, and resolve once no member runs, so that whoever
 * uses the GPU next never meets a survivor. Given the `leader` identity recorded at start, a group that
 * is not that leader's is left alone (resolves false). A refused signal throws `KillNotPermittedError`.
 */
export async function killGroup(pgid: number, graceMs = 10_000, leader?: ProcessIdentity): Promise<boolean> {
  // Checked before every signal: nothing is sent to a group whose leader is not the one recorded.
  const ours = () => leader === undefined || groupStartedBy(leader);
  if (!groupRunning(pgid)) return true;
  if (!ours()) return false;
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (groupRunning(pgid) && Date.now() < deadline) await sleep(50);
  while (groupRunning(pgid)) {
    if (!ours()) return false;
    signalGroup(pgid, 'SIGKILL');
    await sleep(50);
  }
  return true;
}
