/**
 * One real MLflow tracking server per test file, on a free loopback port with its state in a temp
 * folder, started and stopped through the same code the stack uses (app/stack/mlflow-server.ts).
 *
 * Wire it with `test.before(async (t) => { t.context.mlflow = await startMlflowHarness(); })` and
 * `test.after.always((t) => t.context.mlflow?.close())`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MlflowClient, type MlflowClientOptions } from '../../src/mlflow';
import { freePort } from '../../app/stack/free-port';
import { startMlflowServer, type MlflowServerHandle } from '../../app/stack/mlflow-server';

/** A running test server and what tests need to reach or restart it. */
export interface MlflowHarness {
  /** Tracking URI, e.g. `http://127.0.0.1:41234`. */
  url: string;
  port: number;
  /** Temp folder with the database, artifacts, log and pid file. */
  stateDir: string;
  logFile: string;
  /** The current server; replaced by {@link restart}. */
  server: MlflowServerHandle;
  /** A client with quick retries, so a failing test fails fast. */
  client(options?: Partial<MlflowClientOptions>): MlflowClient;
  /** Stop the server (its state stays). */
  stop(): Promise<void>;
  /** Start a server again on the same state folder and port. */
  start(): Promise<void>;
  /** Stop the server and remove the temp folder (kept, with its log, when CSR_KEEP_TEST_STATE is set). */
  close(): Promise<void>;
}

/** Start a fresh server in a new temp folder. */
export async function startMlflowHarness(): Promise<MlflowHarness> {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-mlflow-test-'));
  const logFile = path.join(stateDir, 'mlflow.log');
  // freePort releases the port before the server binds it; another test file may grab it in between.
  let server: MlflowServerHandle | undefined;
  for (let attempt = 1; server === undefined; attempt++) {
    const port = await freePort();
    try {
      server = await startMlflowServer({ stateDir, port, logFile });
    } catch (error) {
      if (attempt >= 3 || !/already in use/.test((error as Error).message)) throw error;
    }
  }
  const port = server.port;
  let stopped = false;
  const harness: MlflowHarness = {
    url: server.url,
    port,
    stateDir,
    logFile,
    server,
    client: (options) =>
      new MlflowClient({ trackingUri: harness.url, retry: { attempts: 3, initialDelayMs: 100 }, ...options }),
    async stop() {
      stopped = true;
      await harness.server.stop();
    },
    async start() {
      harness.server = await startMlflowServer({ stateDir, port, logFile });
      stopped = false;
    },
    async close() {
      if (!stopped) await harness.server.stop();
      if (!process.env.CSR_KEEP_TEST_STATE) fs.rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return harness;
}

/** A temp folder removed when the test ends (kept when CSR_KEEP_TEST_STATE is set). */
export function tempDir(t: { teardown(fn: () => void): void }, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => {
    if (!process.env.CSR_KEEP_TEST_STATE) fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
