/**
 * Workers of the end-to-end fault tests started inside Linux namespaces with util-linux `unshare` (no
 * root needed where unprivileged user namespaces are allowed):
 * - `tmpfs`: a mount namespace with a size-limited tmpfs mounted over a folder: a real small
 *   filesystem that only this worker (and what it starts) sees; the test reads and fills it through
 *   `/proc/<pid>/root`.
 * - `hostname`: a UTS + PID namespace: the worker has its own host name (so its default host id, as on
 *   another machine) and its own pid space, so its pids mean nothing to the other workers.
 * Each is started the way `stackUp` starts a worker (a detached process group, `run/worker-<name>.pid`,
 * `logs/worker-<name>.log`), so `stackDown` stops it with the rest.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CsrEnv } from '../../src/env';
import { startDetached, stopPidFile } from '../../app/stack/process-group';
import { processTree, repoRoot, running, waitFor } from './fault-stack';

/** How to start one worker process in its own namespaces. */
export interface NamespacedWorkerOptions {
  env: CsrEnv;
  /** Pid file `run/worker-<name>.pid`, log `logs/worker-<name>.log`. */
  name: string;
  /** `csr` arguments, e.g. `['worker', '--cpu', '--stand-ins', '1']`. */
  args: string[];
  /** Mount a tmpfs of `size` (`mount -o size=`, e.g. `64m`) over `dir` in the worker's mount namespace. */
  tmpfs?: { dir: string; size: string };
  /** Run the worker with this host name in a UTS and PID namespace of its own. */
  hostname?: string;
}

/** A started worker. */
export interface NamespacedWorker {
  name: string;
  /** The process the pid file records: the worker itself, or (with `hostname`) the `unshare` above it. */
  pid: number;
  pidFile: string;
  logFile: string;
  /** The worker's Node process: `pid` itself, or (with `hostname`) the one under `unshare` (pid 1 of its namespace). */
  node(): number | undefined;
  /** What the worker logged since it was started. */
  log(): string;
  /** A path as the worker sees it (its mount namespace), readable and writable from here. */
  seen(file: string): string;
  /** Resolves once the worker prints `workers ready`; fails if it exits first. */
  ready(timeoutMs?: number): Promise<void>;
  /** SIGTERM its process group (SIGKILL after 30 s), as `csr down` does. */
  stop(): Promise<void>;
}

/** Why workers cannot be put in namespaces here, or undefined when they can. */
export function namespacesUnavailable(): string | undefined {
  const probe = spawnSync('unshare', ['-Urm', '--', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /mnt && echo ok'], {
    encoding: 'utf8',
  });
  if (probe.error) return `unshare could not be run: ${probe.error.message}`;
  if (probe.stdout.trim() !== 'ok') return `unshare -Urm + mount -t tmpfs failed: ${probe.stderr.trim() || `exit ${probe.status}`}`;
  return undefined;
}

/** Start `csr <args>` in namespaces; see the module comment. */
export function startNamespacedWorker(options: NamespacedWorkerOptions): NamespacedWorker {
  const { env, name } = options;
  const pidFile = path.join(env.runDir, `worker-${name}.pid`);
  const logFile = path.join(env.logDir, `worker-${name}.log`);
  fs.mkdirSync(env.logDir, { recursive: true });
  const logFrom = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
  const csr = path.join(repoRoot, 'bin', 'csr.js');
  const flags = ['--user', '--map-root-user'];
  if (options.tmpfs) flags.push('--mount');
  // --fork: a new PID namespace applies to children only; the worker becomes its pid 1.
  if (options.hostname) flags.push('--uts', '--pid', '--fork', '--mount-proc');
  // Arguments, not string splicing: $1 size, $2 folder, $3 host name, then the command.
  const script =
    'set -e; if [ -n "$1" ]; then mount -t tmpfs -o "size=$1" csr-test-tmpfs "$2"; fi; ' +
    'if [ -n "$3" ]; then hostname "$3"; fi; shift 3; exec "$@"';
  const pid = startDetached({
    command: 'unshare',
    args: [
      ...flags,
      '--',
      'sh',
      '-c',
      script,
      'sh',
      options.tmpfs?.size ?? '',
      options.tmpfs?.dir ?? '',
      options.hostname ?? '',
      process.execPath,
      csr,
      ...options.args,
    ],
    pidFile,
    logFile,
    env: { ...process.env, CSR_HOME: env.home },
    cwd: repoRoot,
  });
  const log = () => {
    try {
      const text = fs.readFileSync(logFile);
      return text.subarray(logFrom).toString('utf8');
    } catch {
      return '';
    }
  };
  return {
    name,
    pid,
    pidFile,
    logFile,
    log,
    node: () =>
      processTree(pid).find((candidate) => {
        try {
          const argv = fs.readFileSync(`/proc/${candidate}/cmdline`, 'utf8').split('\0');
          return argv[0] === process.execPath && argv[1] === csr;
        } catch {
          return false;
        }
      }),
    seen: (file) => path.join(`/proc/${pid}/root`, path.resolve(file)),
    async ready(timeoutMs = 180_000) {
      await waitFor(
        `worker ${name} to be ready (${logFile})`,
        () => {
          if (/workers ready/.test(log())) return true;
          if (!running(pid)) throw new Error(`worker ${name} exited before it was ready:\n${log()}`);
          return undefined;
        },
        timeoutMs,
        200,
      );
    },
    async stop() {
      await stopPidFile(pidFile, 30_000);
    },
  };
}
