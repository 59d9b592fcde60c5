/**
 * MLflow outages end to end: one small CSR run (three iterations on the toy world) on the embedded stack
 * started by its own code (`stackUp`, what `csr up` runs) on free ports with a temporary CSR_HOME, with
 * real compute. The workers reach MLflow through a small HTTP proxy in this process (their
 * MLFLOW_TRACKING_URI), and each iteration's MLflow record falls in an outage of one kind:
 *
 * - iteration 0, refused: the MLflow server is stopped (and the proxy stops listening, so a connection is
 *   refused as it would be without the proxy), then started again by `stackUp`;
 * - iteration 1, 502: the proxy answers every request with 502 Bad Gateway, passing none on;
 * - iteration 2, hung: the proxy accepts every request and never answers; when the outage ends it drops
 *   the held connections.
 *
 * The toy steps take seconds, less than an outage, so each iteration is held by the workflow's own pause
 * signal from its start until its outage is on. The outage lasts until the iteration's whole record is in
 * the spool (its DPO curves, its evaluation metrics on the parent run, its own MLflow run closed; wherever
 * the workflow writes them: during the iteration, at its end or on the next iteration's tracking lane),
 * and at least a set time; the spool must then empty before the next outage. The run must complete,
 * nothing be given up, and MLflow must hold every metric point the run sent exactly once and no other:
 * "sent" is counted from what the run produced, not from what MLflow got (each iteration's evaluation
 * metrics and curate/DPO statistics from the workflow's result, the DPO curves from each DPO step's
 * metrics.jsonl). The figures are printed.
 *
 * Run with `npm run test:faults:e2e` (minutes; not part of `npm test`).
 */
import anyTest, { type TestFn } from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { loadConfig, type CsrConfig } from '../../src/config';
import { IDEMPOTENCY_TAG, MlflowClient } from '../../src/mlflow';
import type { IterationStatus, IterationSummary } from '../../src/shared/run-types';
import { connectClient } from '../../src/client/temporal';
import { newRunInput, startRun } from '../../app/cli/run-command';
import { stopPidFile } from '../../app/stack/process-group';
import { mlflowPidFile, stopMlflowServer } from '../../app/stack/mlflow-server';
import { PARENT_TRENDS } from '../../activities/tracking';
import { iterationStatusQuery, pauseSignal, resumeSignal } from '../../workflows/messages';
import { type FaultStack, repoRoot, startFaultStack, waitFor } from '../helpers/fault-stack';

type ProxyMode = 'pass' | 'refuse' | '502' | 'hang';

/**
 * An HTTP proxy in front of MLflow that fails the ways a network and a gateway do: `refuse` stops
 * listening (connections are refused), `502` answers Bad Gateway without passing the request on, `hang`
 * reads the request and never answers. Each request is passed on over a connection of its own, so no
 * stale kept-alive connection outlives an MLflow restart.
 */
class OutageProxy {
  mode: ProxyMode = 'pass';
  /** Requests answered 502 or held unanswered by this proxy. */
  failed = 0;
  private server: http.Server | undefined;
  private readonly held: http.ServerResponse[] = [];

  /** The port it listens on, kept across a `refuse`. */
  port = 0;

  private constructor(private readonly upstream: URL) {}

  static async start(target: string): Promise<OutageProxy> {
    const proxy = new OutageProxy(new URL(target));
    proxy.port = await proxy.listen(0);
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Switch to `mode`; leaving `hang` drops the held connections, leaving `refuse` listens again. */
  async set(mode: ProxyMode): Promise<void> {
    if (this.mode === 'hang' && mode !== 'hang') for (const res of this.held.splice(0)) res.destroy();
    if (mode === 'refuse' && this.mode !== 'refuse') await this.stopListening();
    if (this.mode === 'refuse' && mode !== 'refuse') await this.listen(this.port);
    this.mode = mode;
  }

  async close(): Promise<void> {
    for (const res of this.held.splice(0)) res.destroy();
    await this.stopListening();
  }

  private async listen(port: number): Promise<number> {
    const server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  private async stopListening(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (this.mode === '502') {
        this.failed += 1;
        res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body><h1>502 Bad Gateway</h1></body></html>');
        return;
      }
      if (this.mode === 'hang') {
        this.failed += 1;
        this.held.push(res);
        return;
      }
      const forward = http.request(
        { host: this.upstream.hostname, port: this.upstream.port, path: req.url, method: req.method, headers: req.headers, agent: false },
        (answer) => {
          const body: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => body.push(chunk));
          answer.on('end', () => res.writeHead(answer.statusCode ?? 502, answer.headers).end(Buffer.concat(body)));
        },
      );
      // MLflow gone between two requests: what a gateway answers then.
      forward.on('error', () => {
        if (!res.headersSent) res.writeHead(502).end();
      });
      forward.end(Buffer.concat(chunks));
    });
  }
}

/** One metric point: the MLflow run (by idempotency key), the metric key, the step. */
const pointId = (run: string, key: string, step: number) => `${run} ${key} @${step}`;

/**
 * The points of a DPO step's curves as its metrics.jsonl holds them: every finite number of every
 * complete record with a step and a time, one per name and step (the first), `dpo/<name>`.
 */
function curvePoints(dpoDir: string): { key: string; step: number; value: number }[] {
  const file = path.join(dpoDir, 'metrics.jsonl');
  if (!fs.existsSync(file)) return [];
  const points = new Map<string, { key: string; step: number; value: number }>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(0, -1)) {
    const record = JSON.parse(line) as Record<string, unknown>;
    if (typeof record.step !== 'number' || typeof record.time_ms !== 'number') continue;
    for (const [name, value] of Object.entries(record)) {
      if (name === 'step' || name === 'time_ms' || typeof value !== 'number' || !Number.isFinite(value)) continue;
      const key = `dpo/${name}`;
      if (!points.has(pointId('', key, record.step))) points.set(pointId('', key, record.step), { key, step: record.step, value });
    }
  }
  return [...points.values()];
}

/**
 * Every metric point the run sent, by id, with its value and iteration: on the parent run, each
 * iteration's evaluation metrics (`eval/<benchmark>/<metric>`) and curate/DPO trends at step = iteration;
 * on each iteration's run, its DPO curves.
 */
function sentPoints(runKey: string, runDir: string, history: IterationSummary[]): Map<string, { value: number; iteration: number }> {
  const sent = new Map<string, { value: number; iteration: number }>();
  for (const { iteration, metrics, stats } of history) {
    for (const [key, value] of Object.entries(metrics)) sent.set(pointId(runKey, `eval/${key}`, iteration), { value, iteration });
    for (const [key, stat] of Object.entries(PARENT_TRENDS)) {
      if (typeof stats[stat] === 'number') sent.set(pointId(runKey, key, iteration), { value: stats[stat], iteration });
    }
    const dpoDir = path.join(runDir, `iter-${String(iteration).padStart(2, '0')}`, 'dpo');
    for (const point of curvePoints(dpoDir)) sent.set(pointId(`${runKey}/iter-${iteration}`, point.key, point.step), { value: point.value, iteration });
  }
  return sent;
}

/** A write the watcher saw in the spool's `pending/` folder. */
interface SpooledSeen {
  id: string;
  seenAt: number;
  kind: string;
  metrics: { key: string; step: number }[];
}

/**
 * Watch `<spool>/pending/` every 100 ms: each write seen there (an MLflow write the tracker could not
 * deliver) and how many wait there now.
 */
function watchSpool(pendingDir: string) {
  const seen = new Map<string, SpooledSeen>();
  const state = { pending: 0 };
  const look = () => {
    let names: string[] = [];
    try {
      names = fs.readdirSync(pendingDir).filter((name) => name.endsWith('.json'));
    } catch {
      return; // not made yet
    }
    state.pending = names.length;
    for (const name of names) {
      const id = name.slice(0, -'.json'.length);
      if (seen.has(id)) continue;
      try {
        const write = JSON.parse(fs.readFileSync(path.join(pendingDir, name), 'utf8')) as { kind: string; batch?: { metrics: { key: string; step: number }[] } };
        seen.set(id, { id, seenAt: Date.now(), kind: write.kind, metrics: write.batch?.metrics ?? [] });
      } catch {
        // delivered (removed) meanwhile, or not yet renamed into place: read on the next look
      }
    }
  };
  const timer = setInterval(look, 100);
  return { seen, state, look, stop: () => clearInterval(timer) };
}

type OutageKind = 'refused' | '502' | 'hung';

/** What one outage was and what it cost. */
interface OutageRecord {
  kind: OutageKind;
  iteration: number;
  /** The gate the iteration was held at when the outage began. */
  pausedBefore: string;
  startedAt: number;
  endedAt: number;
  /** Writes and metric points the tracker spooled from the start of this outage until the next one. */
  spooledWrites?: number;
  spooledPoints?: number;
  /** Seconds from the end of the outage until the spool was empty again. */
  drainedSeconds: number;
  /** Requests the proxy answered 502 or held (0 for `refused`: no connection was made). */
  failedRequests: number;
}

/** Each outage, the iteration whose end it covers, and how long it lasts at least. */
const OUTAGES: { kind: OutageKind; iteration: number; minSeconds: number }[] = [
  { kind: 'refused', iteration: 0, minSeconds: 20 },
  { kind: '502', iteration: 1, minSeconds: 30 },
  // Longer than the tracker's request timeout (15 s), so held requests time out, and their retries too.
  { kind: 'hung', iteration: 2, minSeconds: 40 },
];

interface Context {
  stack: FaultStack;
  proxy: OutageProxy;
}

const test = anyTest as TestFn<Context>;
const fixture = path.join(repoRoot, 'test', 'fixtures', 'tiny-toy.yaml');

function outageConfig(): CsrConfig {
  const config = loadConfig(fixture);
  config.name = 'faults-e2e-mlflow';
  config.iterations = 2; // iterations 0, 1, 2: one iteration end per outage
  config.evaluate.stop_when_worse = false;
  config.workers.gpu_shards = 1; // one process start per step on a loaded machine
  return config;
}

const seconds = (ms: number) => Math.round(ms / 100) / 10;

test.before(async (t) => {
  const stack = await startFaultStack();
  t.context.stack = stack;
  // The workers talk to MLflow through the proxy: started again with MLFLOW_TRACKING_URI pointing at it.
  // The stack's own env (stack.env) still names the embedded server, which `stack.up()` adopts or restarts.
  t.context.proxy = await OutageProxy.start(stack.env.mlflowUri);
  for (const name of fs.readdirSync(stack.env.runDir).filter((f) => f.startsWith('worker-') && f.endsWith('.pid'))) {
    await stopPidFile(path.join(stack.env.runDir, name), 30_000);
  }
  process.env.MLFLOW_TRACKING_URI = t.context.proxy.url;
  await stack.up();
});

test.after.always(async (t) => {
  await t.context.proxy?.close();
  delete process.env.MLFLOW_TRACKING_URI;
  await t.context.stack?.close();
});

test.serial('MLflow refused, answering 502 and hung at the end of an iteration: the run completes and every metric point arrives exactly once', async (t) => {
  const { stack, proxy } = t.context;
  const config = outageConfig();
  const input = newRunInput(config, fixture);
  const runDir = path.join(stack.env.artifactsDir, input.runKey);
  const spoolDir = path.join(stack.env.home, 'spool', 'mlflow');
  const spool = watchSpool(path.join(spoolDir, 'pending'));
  t.teardown(() => spool.stop());
  const client = await connectClient(stack.env);
  const startedAt = Date.now();
  const workflowId = await startRun(input);
  const handle = client.workflow.getHandle(workflowId);
  const outages: OutageRecord[] = [];
  /** A line of what happened when, seconds from the run's start. */
  const progress = (line: string) => t.log(`${seconds(Date.now() - startedAt).toFixed(1).padStart(6)} s  ${line}`);

  const iterationStatus = (iteration: number) =>
    client.workflow
      .getHandle(`${workflowId}/iter-${iteration}`)
      .query(iterationStatusQuery)
      .catch(() => undefined as IterationStatus | undefined);
  const tooLate = (status: IterationStatus | undefined, iteration: number) => {
    if (status && !status.paused && (status.currentStep === 'record' || status.currentStep === 'done')) {
      throw new Error(`iteration ${iteration} reached ${status.currentStep} before it could be paused`);
    }
  };

  /** Pause an iteration as soon as its workflow exists: it stops at its next gate, long before it records. */
  const pauseWhenStarted = (iteration: number) =>
    waitFor(
      `iteration ${iteration} to start`,
      () =>
        client.workflow
          .getHandle(`${workflowId}/iter-${iteration}`)
          .signal(pauseSignal)
          .then(
            () => true,
            () => undefined, // not started yet
          ),
      1_200_000,
      100,
    );

  // The steps of the toy run take seconds, less than an outage: each iteration is held from its start until
  // its outage is on, so that each outage covers one iteration's record and no other.
  await pauseWhenStarted(OUTAGES[0]!.iteration);
  for (const [index, outage] of OUTAGES.entries()) {
    const { iteration, kind } = outage;
    const child = client.workflow.getHandle(`${workflowId}/iter-${iteration}`);
    const pausedBefore = await waitFor(
      `iteration ${iteration} to pause`,
      async () => {
        const status = await iterationStatus(iteration);
        tooLate(status, iteration);
        return status?.paused && status.currentStep?.startsWith('paused before ') ? status.currentStep : undefined;
      },
      600_000,
      100,
    );

    const begun = Date.now();
    const failedBefore = proxy.failed;
    progress(`iteration ${iteration} ${pausedBefore}; ${kind} outage begins`);
    if (kind === 'refused') {
      await proxy.set('refuse');
      t.true(await stopMlflowServer(mlflowPidFile(stack.env.runDir)), 'the MLflow server was running and is stopped');
    } else {
      await proxy.set(kind === '502' ? '502' : 'hang');
    }
    await child.signal(resumeSignal);
    const next = OUTAGES[index + 1]?.iteration;
    const nextPaused = next === undefined ? Promise.resolve(true) : pauseWhenStarted(next);
    nextPaused.catch(() => undefined); // awaited below
    // The outage lasts until the iteration's whole record is spooled (written at its end or on the next
    // iteration's lane): its evaluation metrics on the parent run, then its own run closed, the record's last
    // write (every write after a buffered one is queued behind it); and at least minSeconds.
    await waitFor(
      `iteration ${iteration}'s record to be spooled during the ${kind} outage`,
      () => {
        spool.look();
        const since = [...spool.seen.values()].filter((w) => w.seenAt >= begun);
        const metrics = since.some((w) => w.metrics.some((m) => m.step === iteration && m.key.startsWith('eval/')));
        const closed = since.some((w) => w.kind === 'update-run');
        return metrics && closed && Date.now() - begun >= outage.minSeconds * 1000 ? true : undefined;
      },
      600_000,
      200,
    );
    progress(`iteration ${iteration}'s record spooled`);
    if (kind === 'refused') await stack.up(); // `csr up`: starts the MLflow server again, adopts the rest
    await proxy.set('pass');
    const ended = Date.now();
    progress(`${kind} outage over after ${seconds(ended - begun)} s`);
    // Everything spooled is delivered (retried every 15 s) before the next outage: each is its own episode.
    await waitFor(
      `the MLflow spool to empty after the ${kind} outage`,
      () => {
        spool.look();
        return spool.state.pending === 0 ? true : undefined;
      },
      300_000,
      200,
    );
    const drainedSeconds = seconds(Date.now() - ended);
    progress(`spool empty ${drainedSeconds} s later`);
    const failedRequests = proxy.failed - failedBefore;
    outages.push({ kind, iteration, pausedBefore: pausedBefore.slice('paused before '.length), startedAt: begun, endedAt: ended, drainedSeconds, failedRequests });
    await nextPaused;
  }

  const history = (await handle.result()) as IterationSummary[];
  const runSeconds = seconds(Date.now() - startedAt);
  progress('the run completed');
  t.deepEqual(
    history.map((h) => h.iteration),
    [0, 1, 2],
    'the run completed its three iterations',
  );
  t.true(
    history.flatMap((h) => h.steps).every((s) => s.state === 'done' || s.state === 'skipped'),
    JSON.stringify(history.map((h) => h.steps)),
  );

  // Every spooled write is delivered (the tracker retries every 15 s in the background) and none given up.
  await waitFor(
    'the MLflow spool to empty',
    () => {
      spool.look();
      return spool.state.pending === 0 ? true : undefined;
    },
    180_000,
    500,
  );
  spool.stop();
  const rejected = fs.readdirSync(path.join(spoolDir, 'rejected'));
  for (const [i, outage] of outages.entries()) {
    const until = outages[i + 1]?.startedAt ?? Infinity;
    const writes = [...spool.seen.values()].filter((w) => w.seenAt >= outage.startedAt && w.seenAt < until);
    outage.spooledWrites = writes.length;
    outage.spooledPoints = writes.reduce((sum, w) => sum + w.metrics.length, 0);
  }

  // What MLflow holds: one MLflow run per CSR run and iteration, each finished, each metric point once.
  const mlflow = new MlflowClient({ trackingUri: stack.env.mlflowUri });
  const experiment = await mlflow.getExperimentByName(config.name);
  t.truthy(experiment, 'the experiment exists');
  const runs = await mlflow.searchRuns({ experimentIds: [experiment!.experimentId] });
  const runKeys = runs.map((run) => run.data.tags[IDEMPOTENCY_TAG] ?? `(no key: ${run.info.runId})`).sort();

  const received = new Map<string, number[]>();
  let receivedPoints = 0;
  for (const run of runs) {
    const key = run.data.tags[IDEMPOTENCY_TAG] ?? run.info.runId;
    for (const metric of Object.keys(run.data.metrics)) {
      for (const point of await mlflow.getMetricHistory(run.info.runId, metric)) {
        receivedPoints += 1;
        const id = pointId(key, metric, point.step);
        received.set(id, [...(received.get(id) ?? []), point.value as number]);
      }
    }
  }
  const sent = sentPoints(input.runKey, runDir, history);
  const duplicates = [...received].filter(([, values]) => values.length > 1).map(([id, values]) => `${id}: ${values.join(', ')}`);
  const missing = [...sent.keys()].filter((id) => !received.has(id));
  const unexpected = [...received.keys()].filter((id) => !sent.has(id));
  const wrong = [...sent].filter(([id, { value }]) => received.has(id) && received.get(id)![0] !== value).map(([id, { value }]) => `${id}: sent ${value}, got ${received.get(id)}`);

  const perIteration = (iteration: number) => {
    const ids = [...sent].filter(([, p]) => p.iteration === iteration).map(([id]) => id);
    return { sent: ids.length, received: ids.reduce((sum, id) => sum + (received.get(id)?.length ?? 0), 0) };
  };
  const lines = [
    `MLflow outages in one run (${config.iterations + 1} iterations, ${config.prompts.limit} prompts), the whole run ${runSeconds} s:`,
    ...outages.map((o) => {
      const points = perIteration(o.iteration);
      return (
        `  ${o.kind.padEnd(7)} from iteration ${o.iteration}'s ${o.pausedBefore}: ${seconds(o.endedAt - o.startedAt).toFixed(1)} s, ` +
        `${o.spooledWrites} writes (${o.spooledPoints} metric points) spooled, spool empty ${o.drainedSeconds.toFixed(1)} s after, ` +
        `${o.failedRequests} requests failed by the proxy, points sent ${points.sent}, received ${points.received}`
      );
    }),
    `  in all: ${runs.length} MLflow runs, points sent ${sent.size}, received ${receivedPoints}, duplicates ${duplicates.length}, missing ${missing.length}, writes given up ${rejected.length}`,
  ];
  // The figures first, so that a failing run shows them too.
  t.log(lines.join('\n'));
  console.log(lines.join('\n'));

  const reasons = rejected.filter((name) => name.endsWith('.reason.txt')).map((name) => fs.readFileSync(path.join(spoolDir, 'rejected', name), 'utf8'));
  t.deepEqual(rejected, [], `no MLflow write was given up: ${reasons.join('; ')}`);
  t.deepEqual(runKeys, [input.runKey, ...history.map((h) => `${input.runKey}/iter-${h.iteration}`)].sort(), 'one MLflow run per run and iteration');
  for (const run of runs) t.is(run.info.status, 'FINISHED', `${run.info.runName}: status`);
  t.deepEqual(duplicates, [], 'no metric history holds a step twice');
  t.deepEqual(missing, [], 'every point sent arrived');
  t.deepEqual(unexpected, [], 'MLflow holds no point the run did not send');
  t.deepEqual(wrong, [], 'every point arrived with its value');
  t.is(receivedPoints, sent.size, 'points sent = points received');
  t.true(sent.size > 30, `points sent: ${sent.size}`);
  await client.connection.close();
});
