/**
 * Who a recorded pid was: pid + start time (+ boot id). Pids are reused, so a pid file, lease or group
 * leader recorded an hour ago may now name an unrelated process; before signalling anything we check
 * that the process with that pid is the one recorded. On Linux the start time is field 22 of
 * `/proc/<pid>/stat` (clock ticks since boot) and the boot id comes from
 * `/proc/sys/kernel/random/boot_id`; elsewhere both are null and only the pid can be compared.
 */
import * as fs from 'node:fs';

/** A process as recorded: its pid, its start time in clock ticks since boot, and the boot it ran in. */
export interface ProcessIdentity {
  pid: number;
  /** Field 22 of /proc/<pid>/stat; null where /proc is not available. */
  start: string | null;
  /** /proc/sys/kernel/random/boot_id; null where not available. */
  boot: string | null;
}

let bootIdCache: string | null | undefined;

/** This machine's current boot id, or null where it cannot be read. */
export function bootId(): string | null {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = null;
    }
  }
  return bootIdCache;
}

const hasProc = process.platform === 'linux' && fs.existsSync('/proc/self/stat');

/** Start time (ticks since boot) of `pid`, zombies included; undefined when no such process exists. */
function startTicks(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and ')'; fields after its last ')' do not. starttime is field 22.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** The identity of the process that has `pid` now, or undefined when there is none. */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (!hasProc) {
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
    }
    return { pid, start: null, boot: null };
  }
  const start = startTicks(pid);
  return start === undefined ? undefined : { pid, start, boot: bootId() };
}

/** True when the process that has `recorded.pid` now is the recorded one (same start time and boot). */
export function isSameProcess(recorded: ProcessIdentity): boolean {
  const now = processIdentity(recorded.pid);
  if (now === undefined) return false;
  return now.start === recorded.start && now.boot === recorded.boot;
}

/** When (epoch ms) the process `pid` started, or undefined where that cannot be read. */
export function processStartedAtMs(pid: number): number | undefined {
  const ticks = startTicks(pid);
  if (ticks === undefined) return undefined;
  try {
    const btime = /^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1];
    // USER_HZ is 100 on every Linux build that matters (the kernel ABI fixes it for /proc).
    return btime === undefined ? undefined : Number(btime) * 1000 + Number(ticks) * 10;
  } catch {
    return undefined;
  }
}

/** Parse a recorded identity (JSON), or undefined when `text` is not one. */
export function parseIdentity(text: string): ProcessIdentity | undefined {
  try {
    const value = JSON.parse(text) as Partial<ProcessIdentity>;
    if (typeof value !== 'object' || value === null || !Number.isInteger(value.pid) || (value.pid as number) <= 0) {
      return undefined;
    }
    const str = (v: unknown) => (typeof v === 'string' ? v : null);
    return { pid: value.pid as number, start: str(value.start), boot: str(value.boot) };
  } catch {
    return undefined;
  }
}
