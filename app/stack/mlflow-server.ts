/**
 * The embedded MLflow tracking server: the official `mlflow server` of the project's venv, on SQLite
 * with a local artifact store served through its artifact proxy (`--serve-artifacts`), so runs and
 * artifacts survive restarts and clients need nothing but HTTP.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../../src/env';
import { portFree } from './free-port';
import { groupAlive, livePid, startDetached, stopGroup, stopPidFile } from './process-group';
import { processIdentity } from '../../src/gpu/process-identity';
import { httpOk, waitUntil } from './wait';

/** Where and how to run the embedded MLflow server. */
export interface MlflowServerOptions {
  /** Folder of its SQLite database (`mlflow.db`) and artifact store (`artifacts/`), kept across restarts. */
  stateDir: string;
  /** Port to listen on. */
  port: number;
  /** Interface to bind. @default '127.0.0.1' */
  host?: string;
  /** Pid file; a live pid in it means "already running" and that server is adopted. @default `<stateDir>/mlflow.pid` */
  pidFile?: string;
  /** Log file (stdout and stderr appended). @default `<stateDir>/mlflow.log` */
  logFile?: string;
  /** Python venv whose `bin/mlflow` is run. @default `<repo>/.venv` */
  venv?: string;
  /** Give up waiting for `/health` after this long; the server needs 10-30 s on a busy small machine. @default 120000 */
  startTimeoutMs?: number;
  /** Time between SIGTERM and SIGKILL when stopping. @default 10000 */
  stopGraceMs?: number;
  /** Run MLflow's basic-auth app (its user store in the state folder); unset = no authentication. */
  basicAuth?: MlflowBasicAuth;
}

/** The admin that MLflow's basic-auth app creates on first start, and the key that signs its cookies. */
export interface MlflowBasicAuth {
  username: string;
  password: string;
  secretKey: string;
}

/** {@link MlflowServerOptions} with every default filled in. */
export type ResolvedMlflowServerOptions = Required<Omit<MlflowServerOptions, 'basicAuth'>> & {
  basicAuth?: MlflowBasicAuth;
  executable: string;
  url: string;
};

/** A running MLflow server, started by this call or adopted from its pid file. */
export interface MlflowServerHandle {
  /** Tracking URI, e.g. `http://127.0.0.1:5000`. */
  url: string;
  port: number;
  /** Pid of the process-group leader (`mlflow server`). */
  pid: number;
  /** True if this call started it, false if it was already running. */
  started: boolean;
  /** Server version as `GET /version` reports it. */
  version: string;
  /** Kill the whole process group, wait until every member has exited, and remove the pid file. */
  stop(): Promise<void>;
}

/** The pid file the stack uses for the embedded MLflow server under `$CSR_HOME/run/`. */
export const mlflowPidFile = (runDir: string): string => path.join(runDir, 'mlflow.pid');

/** Fill defaults and reject unusable options before anything starts. */
export function resolveMlflowServerOptions(options: MlflowServerOptions): ResolvedMlflowServerOptions {
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
    throw new TypeError(`MLflow server port: expected an integer 1-65535, got ${options.port}`);
  }
  const stateDir = path.resolve(options.stateDir);
  const host = options.host ?? '127.0.0.1';
  const venv = path.resolve(options.venv ?? path.join(repoRoot, '.venv'));
  return {
    stateDir,
    port: options.port,
    host,
    pidFile: path.resolve(options.pidFile ?? path.join(stateDir, 'mlflow.pid')),
    logFile: path.resolve(options.logFile ?? path.join(stateDir, 'mlflow.log')),
    venv,
    startTimeoutMs: options.startTimeoutMs ?? 120_000,
    stopGraceMs: options.stopGraceMs ?? 10_000,
    ...(options.basicAuth ? { basicAuth: options.basicAuth } : {}),
    executable: path.join(venv, 'bin', 'mlflow'),
    // 0.0.0.0 binds every interface; clients on this host still reach it through loopback.
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${options.port}`,
  };
}

/** The `mlflow server` command line (checked against `mlflow server --help` of MLflow 3.17). */
export function mlflowServerArgs(options: ResolvedMlflowServerOptions): string[] {
  return [
    'server',
    ...(options.basicAuth ? ['--app-name', 'basic-auth'] : []),
    '--backend-store-uri',
    `sqlite:///${path.join(options.stateDir, 'mlflow.db')}`,
    '--artifacts-destination',
    path.join(options.stateDir, 'artifacts'),
    '--serve-artifacts',
    '--host',
    options.host,
    '--port',
    String(options.port),
    '--workers',
    '1',
  ];
}

/** Environment of the server: no telemetry (no internet here), no background job runner (extra processes we never use). */
function serverEnv(basicAuth?: MlflowBasicAuth): NodeJS.ProcessEnv {
  return {
    ...process.env,
    // The basic-auth app's default user store is basic_auth.db in the working directory: the state folder.
    ...(basicAuth
      ? {
          MLFLOW_AUTH_ADMIN_USERNAME: basicAuth.username,
          MLFLOW_AUTH_ADMIN_PASSWORD: basicAuth.password,
          MLFLOW_FLASK_SERVER_SECRET_KEY: basicAuth.secretKey,
        }
      : {}),
    MLFLOW_DISABLE_TELEMETRY: 'true',
    DO_NOT_TRACK: 'true',
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION: 'false',
    PYTHONUNBUFFERED: '1',
  };
}

/** The last lines of a log, so a start failure explains itself without opening the file. */
function logTail(logFile: string, maxBytes = 4000): string {
  try {
    const size = fs.statSync(logFile).size;
    const fd = fs.openSync(logFile, 'r');
    try {
      const buffer = Buffer.alloc(Math.min(size, maxBytes));
      fs.readSync(fd, buffer, 0, buffer.length, size - buffer.length);
      return buffer.toString('utf8').trim().split('\n').slice(-15).join('\n');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '(no log written)';
  }
}

async function serverVersion(url: string, basicAuth?: MlflowBasicAuth): Promise<string> {
  const headers: Record<string, string> = basicAuth
    ? { authorization: `Basic ${Buffer.from(`${basicAuth.username}:${basicAuth.password}`).toString('base64')}` }
    : {};
  const response = await fetch(`${url}/version`, { headers, signal: AbortSignal.timeout(5000) });
  return (await response.text()).trim();
}

function handle(
  options: ResolvedMlflowServerOptions,
  pid: number,
  started: boolean,
  version: string,
): MlflowServerHandle {
  // Who the server is now: a stop much later must not hit a process that reused its pid.
  const leader = processIdentity(pid);
  return {
    url: options.url,
    port: options.port,
    pid,
    started,
    version,
    async stop() {
      await stopGroup(pid, options.stopGraceMs, leader);
      // Another start may have replaced the pid file meanwhile; only remove our own.
      if (livePid(options.pidFile) === undefined) fs.rmSync(options.pidFile, { force: true });
    },
  };
}

/**
 * Start the MLflow tracking server (or adopt the one its pid file names) and wait until `/health` answers.
 *
 * Throws a plain `Error` naming the cause and the fix when the venv lacks MLflow, when the port is
 * held by another process, or when the server exits or stays silent while starting (with the log tail).
 */
export async function startMlflowServer(options: MlflowServerOptions): Promise<MlflowServerHandle> {
  const resolved = resolveMlflowServerOptions(options);
  const { url, logFile, pidFile } = resolved;
  const health = () => httpOk(`${url}/health`);

  const running = livePid(pidFile);
  if (running !== undefined) {
    await waitUntil(`MLflow server (pid ${running}) at ${url}`, health, {
      timeoutMs: resolved.startTimeoutMs,
      stillStarting: () => groupAlive(running),
      logFile,
    });
    return handle(resolved, running, false, await serverVersion(url, resolved.basicAuth));
  }

  if (!fs.existsSync(resolved.executable)) {
    throw new Error(
      `MLflow is not installed at ${resolved.executable}; run \`npm run bootstrap\` to create the venv, or pass the venv that has it`,
    );
  }
  if (!(await portFree(resolved.port, resolved.host))) {
    throw new Error(
      `port ${resolved.port} on ${resolved.host} is already in use by a process this state folder did not start; ` +
        `pick a free port (CSR_MLFLOW_PORT), or set MLFLOW_TRACKING_URI=${url} to use the server listening there`,
    );
  }

  fs.mkdirSync(path.join(resolved.stateDir, 'artifacts'), { recursive: true });
  const pid = startDetached({
    command: resolved.executable,
    args: mlflowServerArgs(resolved),
    pidFile,
    logFile,
    env: serverEnv(resolved.basicAuth),
    // Anything MLflow writes relative to its working directory stays in the state folder.
    cwd: resolved.stateDir,
  });
  try {
    await waitUntil(`MLflow server at ${url}`, health, {
      timeoutMs: resolved.startTimeoutMs,
      stillStarting: () => groupAlive(pid),
      logFile,
    });
    return handle(resolved, pid, true, await serverVersion(url, resolved.basicAuth));
  } catch (error) {
    await stopGroup(pid, resolved.stopGraceMs);
    fs.rmSync(pidFile, { force: true });
    throw new Error(`${(error as Error).message}\n--- last lines of ${logFile} ---\n${logTail(logFile)}`, {
      cause: error,
    });
  }
}

/** Stop the embedded server whose pid file this is, if it runs. Returns true if one was stopped. */
export function stopMlflowServer(pidFile: string, graceMs = 10_000): Promise<boolean> {
  return stopPidFile(pidFile, graceMs);
}
