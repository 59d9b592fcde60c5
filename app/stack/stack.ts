/**
 * The embedded default stack on one machine: Temporal dev server, MLflow server, and the workers,
 * each a detached process group with a pid file under `$CSR_HOME/run/` and a log under
 * `$CSR_HOME/logs/`. `up` is idempotent (what runs is adopted), `down` stops everything it started.
 * `up` returns once every worker polls its task queues (as Temporal sees it), so a run started right
 * after it does not wait for them.
 * With TEMPORAL_ADDRESS / MLFLOW_TRACKING_URI set, that server is used and none is started.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from '@temporalio/client';
import { connectClient } from '../../src/client/temporal';
import { csrEnv, repoRoot, type CsrEnv } from '../../src/env';
import { mlflowPidFile, startMlflowServer, stopMlflowServer } from './mlflow-server';
import { livePid, startDetached, stopPidFile } from './process-group';
import { portOpen, httpOk } from './wait';
import { startTemporalServer, stopTemporalServer } from './temporal-server';
import { type StartingWorker, queuesNotPolled, servedQueues, waitForPollers } from './worker-pollers';

/** How many workers of each kind `up` starts on this machine. */
export interface StackOptions {
  /** CPU stand-ins for GPU workers on a machine without GPUs. @default 1 */
  gpuWorkers?: number;
  /** Real GPU ids to start one GPU worker each for (instead of stand-ins). */
  gpus?: string[];
  /** Start no workers (servers only). @default false */
  noWorkers?: boolean;
  /**
   * How long `up` waits for the workers it starts or adopts to poll their task queues; past it, `up`
   * throws `WorkersNotPollingError` and leaves everything running. @default 60000
   */
  workerTimeoutMs?: number;
  /** Print a line per stage. */
  log?: (line: string) => void;
}

/** A service of the stack and whether it answers. */
export interface ServiceHealth {
  name: string;
  url: string;
  healthy: boolean;
  embedded: boolean;
  pid?: number;
  /** Workers only: Temporal sees this process poll every queue it serves (undefined: could not ask). */
  polling?: boolean;
}

const workerPidFile = (env: CsrEnv, name: string) => path.join(env.runDir, `worker-${name}.pid`);
const workerLogFile = (env: CsrEnv, name: string) => path.join(env.logDir, `worker-${name}.log`);

/** Names of the worker processes `up` starts. */
function workerPlan(options: StackOptions): { name: string; args: string[] }[] {
  if (options.noWorkers) return [];
  const gpuWorkers: { name: string; args: string[] }[] = options.gpus?.length
    ? [{ name: 'gpu', args: ['worker', '--gpus', options.gpus.join(',')] }]
    : [{ name: 'gpu-standins', args: ['worker', '--stand-ins', String(options.gpuWorkers ?? 1)] }];
  return [{ name: 'cpu', args: ['worker', '--cpu'] }, ...gpuWorkers];
}

/** Start (or adopt) every service; returns their health. */
export async function stackUp(options: StackOptions = {}, env: CsrEnv = csrEnv()): Promise<ServiceHealth[]> {
  const log = options.log ?? (() => undefined);
  for (const dir of [env.home, env.runDir, env.logDir, env.artifactsDir]) fs.mkdirSync(dir, { recursive: true });

  if (env.externalTemporal) {
    log(`temporal  external at ${env.temporalAddress} (TEMPORAL_ADDRESS)`);
  } else {
    const temporal = await startTemporalServer({
      binary: env.temporalBin,
      stateDir: path.join(env.home, 'temporal'),
      runDir: env.runDir,
      logDir: env.logDir,
      port: env.temporalPort,
      uiPort: env.temporalUiPort,
    });
    log(`temporal  ${temporal.started ? 'started' : 'already running'} at ${temporal.address} (pid ${temporal.pid})`);
  }
  if (env.externalMlflow) {
    log(`mlflow    external at ${env.mlflowUri} (MLFLOW_TRACKING_URI)`);
  } else {
    fs.mkdirSync(path.join(env.home, 'mlflow'), { recursive: true });
    const mlflow = await startMlflowServer({
      stateDir: path.join(env.home, 'mlflow'),
      port: env.mlflowPort,
      pidFile: mlflowPidFile(env.runDir),
      logFile: path.join(env.logDir, 'mlflow.log'),
      venv: env.venv,
    });
    log(`mlflow    ${mlflow.started ? 'started' : 'already running'} at ${mlflow.url} (pid ${mlflow.pid})`);
  }
  const workers: StartingWorker[] = [];
  for (const worker of workerPlan(options)) {
    const pidFile = workerPidFile(env, worker.name);
    const logFile = workerLogFile(env, worker.name);
    let pid = livePid(pidFile);
    if (pid !== undefined) {
      log(`worker    ${worker.name} already running (pid ${pid})`);
    } else {
      pid = startDetached({
        command: process.execPath,
        args: [path.join(repoRoot, 'bin', 'csr.js'), ...worker.args],
        pidFile,
        logFile,
        env: { ...process.env, CSR_HOME: env.home },
        cwd: repoRoot,
      });
      log(`worker    ${worker.name} started (pid ${pid}, log ${logFile})`);
    }
    const queues = servedQueues(worker.name) ?? [];
    workers.push({ name: worker.name, pid, logFile, queues, alive: () => livePid(pidFile) !== undefined });
  }
  if (workers.length === 0) return stackHealth(env);
  // Adopted ones too: one restarted with the Temporal server reconnects on its own time.
  const client = await connectClient(env);
  try {
    await waitForPollers(client, workers, { timeoutMs: options.workerTimeoutMs ?? 60_000, log });
    return await stackHealth(env, client);
  } finally {
    await client.connection.close();
  }
}

/** Stop workers first (they kill their compute process groups), then the servers. */
export async function stackDown(env: CsrEnv = csrEnv(), log: (line: string) => void = () => undefined): Promise<void> {
  if (fs.existsSync(env.runDir)) {
    for (const file of fs.readdirSync(env.runDir).filter((f) => f.startsWith('worker-') && f.endsWith('.pid'))) {
      const stopped = await stopPidFile(path.join(env.runDir, file), 30_000);
      log(`worker    ${file.slice('worker-'.length, -'.pid'.length)} ${stopped ? 'stopped' : 'was not running'}`);
    }
  }
  if (!env.externalMlflow) log(`mlflow    ${(await stopMlflowServer(mlflowPidFile(env.runDir))) ? 'stopped' : 'was not running'}`);
  if (!env.externalTemporal) log(`temporal  ${(await stopTemporalServer(env.runDir)) ? 'stopped' : 'was not running'}`);
}

/** Is each service answering, and does Temporal see each worker poll (with `client`, or a client of its own)? */
export async function stackHealth(env: CsrEnv = csrEnv(), client?: Client): Promise<ServiceHealth[]> {
  const [host, portText] = env.temporalAddress.split(':');
  const temporalUp = await portOpen(host ?? '127.0.0.1', Number(portText ?? 7233));
  const services: ServiceHealth[] = [
    {
      name: 'temporal',
      url: env.temporalAddress,
      healthy: temporalUp,
      embedded: !env.externalTemporal,
      pid: livePid(path.join(env.runDir, 'temporal.pid')),
    },
    {
      name: 'temporal-ui',
      url: env.temporalUiUrl,
      healthy: await httpOk(env.temporalUiUrl),
      embedded: !env.externalTemporal,
    },
    {
      name: 'mlflow',
      url: env.mlflowUri,
      healthy: await httpOk(`${env.mlflowUri}/health`),
      embedded: !env.externalMlflow,
      pid: livePid(mlflowPidFile(env.runDir)),
    },
  ];
  const workerFiles = fs.existsSync(env.runDir)
    ? fs.readdirSync(env.runDir).filter((f) => f.startsWith('worker-') && f.endsWith('.pid'))
    : [];
  let ownClient: Client | undefined;
  if (!client && temporalUp && workerFiles.length > 0) ownClient = await connectClient(env).catch(() => undefined);
  const asker = client ?? ownClient;
  try {
    for (const file of workerFiles) {
      const name = file.slice('worker-'.length, -'.pid'.length);
      const pid = livePid(path.join(env.runDir, file));
      const queues = servedQueues(name);
      let polling: boolean | undefined = pid === undefined ? false : undefined;
      if (pid !== undefined && asker && queues) {
        polling = await queuesNotPolled(asker, pid, queues).then(
          (missing) => missing.length === 0,
          () => undefined,
        );
      }
      services.push({ name: `worker-${name}`, url: '-', healthy: pid !== undefined, embedded: true, pid, polling });
    }
  } finally {
    await ownClient?.connection.close();
  }
  return services;
}
