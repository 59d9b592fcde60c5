/**
 * What `csr worker` may be asked to run, and the one function that fills defaults and rejects bad
 * combinations before anything starts.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import type { NativeConnection, NativeConnectionOptions } from '@temporalio/worker';
import { type CsrEnv, csrEnv, repoRoot } from '../src/env';
import { temporalConnectionOptions } from '../src/client/temporal-auth';
import type { ForkServer } from '../activities/fork-server';

/** A kind of worker: `cpu` runs workflows and light activities, `gpu` one worker per GPU, `host` multi-GPU steps. */
export type WorkerKind = 'cpu' | 'gpu' | 'host';

type ActivityMap = Record<string, (...args: never[]) => Promise<unknown>>;

/** The CPU worker's light activities, or how to build them around its fork server (undefined when switched off). */
export type LightActivitiesOption = ActivityMap | ((deps: { forkServer?: ForkServer }) => ActivityMap);

/** Options of `startWorkers`. */
export interface StartWorkersOptions {
  /** Which workers to run in this process; several kinds may share it. */
  kind: WorkerKind | readonly WorkerKind[];
  /** GPU ids of this host (`['0', '1']`): one GPU worker each; the host worker claims from them. @default [] */
  gpus?: readonly string[];
  /**
   * CPU stand-ins for GPU workers on a machine without GPUs: same activities, same queue, no GPU
   * visible, CSR_TORCH_THREADS set so they share the cores. @default 0
   */
  standIns?: number;
  /** This host's id, in lease files and the host queue name. @default os.hostname() (sanitised) */
  hostId?: string;
  /** Paths and server addresses. @default csrEnv() */
  env?: CsrEnv;
  /**
   * A connection to share (tests); it is not closed here. The SDK refuses two workers of one task
   * queue on one connection, so a second worker of a queue (several GPU workers all poll `csr-gpu`)
   * still opens a connection of its own with `connectionOptions`.
   */
  connection?: NativeConnection;
  /**
   * How workers connect when `connection` is absent or already serves their queue.
   * @default { address: env.temporalAddress } with TLS / API key from TEMPORAL_TLS_* and TEMPORAL_API_KEY
   */
  connectionOptions?: NativeConnectionOptions;
  /** @default env.namespace */
  namespace?: string;
  /** Workflow code the CPU worker registers. @default require.resolve('<repo>/workflows') */
  workflowsPath?: string;
  /**
   * Light activities the CPU worker registers besides the compute-step activity, or a function that builds them
   * around the CPU worker's (light) fork server, which they launch Python steps through (the headline plot). @default {}
   */
  lightActivities?: LightActivitiesOption;
  /** Concurrent activities of the CPU worker. @default 2 */
  cpuActivitySlots?: number;
  /** Torch threads of each stand-in. @default max(1, floor(cores / standIns)) */
  torchThreads?: number;
  /** Heartbeat timer of compute steps. @default 10000 */
  heartbeatEveryMs?: number;
  /** Grace between SIGTERM and SIGKILL when a step is cancelled. @default 10000 */
  killGraceMs?: number;
  /** Run the `probe` step once per GPU worker (and once for the stand-ins) at start. @default true */
  probe?: boolean;
  /**
   * A warm compute process per GPU, stand-in and host worker (`python -m csr_compute.fork_server`: torch and
   * the model classes imported once) that forks each step instead of a fresh `python` per step; steps are
   * spawned while it is down or when it refuses one. @default true, unless CSR_FORK_SERVER=0
   */
  forkServer?: boolean;
  /** Where status lines go. @default console.log */
  log?: (line: string) => void;
}

/** A worker to build: the CPU worker, a GPU-queue worker (pinned or stand-in) or the host-queue worker. */
export interface WorkerPlan {
  /** `cpu`, `gpu-0`, `stand-in-1`, `host`. */
  name: string;
  taskQueue: string;
  /** GPUs it leases (empty for the CPU worker, stand-ins and CPU-only hosts). */
  gpus: string[];
  /** Environment pinned for its children. */
  workerEnv: Record<string, string>;
  /** Activity tasks it runs at once: one on a compute queue (a second step would share the GPU's memory). */
  slots: number;
  /** The CPU worker: it also runs the workflows and the light activities. */
  runsWorkflows: boolean;
}

/** Options with every default filled in and every combination checked. */
export interface CompiledWorkersOptions {
  kinds: Set<WorkerKind>;
  gpus: string[];
  standIns: number;
  hostId: string;
  env: CsrEnv;
  connection?: NativeConnection;
  connectionOptions: NativeConnectionOptions;
  namespace: string;
  workflowsPath?: string;
  lightActivities: LightActivitiesOption;
  cpuActivitySlots: number;
  torchThreads: number;
  heartbeatEveryMs: number;
  killGraceMs: number;
  probe: boolean;
  forkServer: boolean;
  log: (line: string) => void;
}

/** The default host id: the hostname, reduced to what a task queue and a file name can carry. */
export function defaultHostId(): string {
  return os.hostname().replace(/[^A-Za-z0-9._-]/g, '-') || 'localhost';
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min)
    throw new TypeError(`${name}: expected an integer >= ${min}, got ${value}`);
  return value;
}

/** `CSR_FORK_SERVER`: unset or 1 = on, 0 = off (every step spawned); anything else is refused. */
function forkServerFromEnv(value: string | undefined): boolean {
  if (value === undefined || value === '' || value === '1') return true;
  if (value === '0') return false;
  throw new TypeError(
    `CSR_FORK_SERVER: expected 0 (spawn every step) or 1 (a warm fork server per worker), got ${value}`,
  );
}

/** Fill defaults and reject bad combinations (a plain TypeError naming the option). */
export function compileWorkersOptions(options: StartWorkersOptions): CompiledWorkersOptions {
  const kinds = new Set<WorkerKind>(typeof options.kind === 'string' ? [options.kind] : options.kind);
  if (kinds.size === 0) throw new TypeError("kind: expected at least one of 'cpu', 'gpu', 'host'");
  for (const kind of kinds) {
    if (!['cpu', 'gpu', 'host'].includes(kind)) {
      throw new TypeError(`kind: expected 'cpu', 'gpu' or 'host', got ${JSON.stringify(kind)}`);
    }
  }
  const gpus = [...(options.gpus ?? [])];
  for (const id of gpus) {
    if (!/^[0-9A-Za-z_-]+$/.test(id))
      throw new TypeError(`gpus: expected GPU ids like 0 or 1, got ${JSON.stringify(id)}`);
  }
  if (new Set(gpus).size !== gpus.length) throw new TypeError(`gpus: ${gpus.join(',')} names a GPU twice`);
  const standIns = positiveInt('standIns', options.standIns, 0, 0);
  if (kinds.has('gpu') && gpus.length === 0 && standIns === 0) {
    throw new TypeError("kind 'gpu': give gpus (e.g. ['0','1']) or standIns (CPU stand-ins on a machine without GPUs)");
  }
  if (kinds.has('host') && gpus.length === 0 && standIns === 0) {
    throw new TypeError("kind 'host': give the host's gpus, or standIns to run multi-GPU steps on the CPU");
  }
  const hostId = options.hostId ?? defaultHostId();
  if (!/^[A-Za-z0-9._-]+$/.test(hostId))
    throw new TypeError(`hostId: expected letters, digits, '.', '_' or '-', got ${hostId}`);
  const env = options.env ?? csrEnv();
  let workflowsPath = options.workflowsPath;
  if (kinds.has('cpu') && workflowsPath === undefined) {
    try {
      workflowsPath = require.resolve(path.join(repoRoot, 'workflows'));
    } catch {
      throw new TypeError(`kind 'cpu': no workflow code at ${path.join(repoRoot, 'workflows')}; pass workflowsPath`);
    }
  }
  const cores = os.availableParallelism();
  return {
    kinds,
    gpus,
    standIns,
    hostId,
    env,
    connection: options.connection,
    // TLS, mTLS and API key from the Temporal CLI's variables, as the CLI client uses them.
    connectionOptions: options.connectionOptions ?? temporalConnectionOptions(env.temporalAddress),
    namespace: options.namespace ?? env.namespace,
    workflowsPath,
    lightActivities: options.lightActivities ?? {},
    cpuActivitySlots: positiveInt('cpuActivitySlots', options.cpuActivitySlots, 2),
    torchThreads: positiveInt(
      'torchThreads',
      options.torchThreads,
      Math.max(1, Math.floor(cores / Math.max(standIns, 1))),
    ),
    heartbeatEveryMs: positiveInt('heartbeatEveryMs', options.heartbeatEveryMs, 10_000, 100),
    killGraceMs: positiveInt('killGraceMs', options.killGraceMs, 10_000, 0),
    probe: options.probe ?? true,
    forkServer: options.forkServer ?? forkServerFromEnv(process.env.CSR_FORK_SERVER),
    log: options.log ?? ((line) => console.log(line)),
  };
}
