import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import {
  IDEMPOTENCY_TAG,
  MlflowClient,
  MlflowError,
  MlflowResponseError,
  MlflowUnreachableError,
  PARENT_RUN_TAG,
  ResilientTracker,
  type MetricInput,
} from '../src/mlflow';
import { freePort } from '../app/stack/free-port';
import { startMlflowHarness, tempDir, type MlflowHarness } from './helpers/mlflow-harness';

const test = anyTest as TestFn<{ mlflow: MlflowHarness }>;

test.before(async (t) => {
  t.context.mlflow = await startMlflowHarness();
});

test.after.always(async (t) => {
  await t.context.mlflow?.close();
});

/** A fresh experiment per test, so tests running side by side never see each other's runs. */
async function experiment(client: MlflowClient): Promise<string> {
  return (await client.getOrCreateExperiment(`test-${randomUUID()}`)).experimentId;
}

/** A 1x1 PNG. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC',
  'base64',
);

/** A real HTTP server on loopback that answers every request with `reply(n)` (n = 1-based request count). */
async function replyingServer(
  reply: (n: number, req: http.IncomingMessage) => { status: number; body: string },
): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server = http.createServer((req, res) => {
    count += 1;
    const { status, body } = reply(count, req);
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => count,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

test('getOrCreateExperiment is idempotent, also when callers race', async (t) => {
  const client = t.context.mlflow.client();
  const name = `exp-${randomUUID()}`;
  t.is(await client.getExperimentByName(name), undefined);
  const first = await client.getOrCreateExperiment(name);
  const again = await client.getOrCreateExperiment(name);
  t.is(again.experimentId, first.experimentId);
  t.is(again.name, name);
  const raced = await Promise.all([1, 2, 3].map(() => client.getOrCreateExperiment(`race-${name}`)));
  t.is(new Set(raced.map((e) => e.experimentId)).size, 1);
  t.truthy(first.artifactLocation?.startsWith('mlflow-artifacts:'), 'the server proxies artifacts');
});

test('a run is created with tags and start time, a child nests under it, and both end', async (t) => {
  const client = t.context.mlflow.client();
  const experimentId = await experiment(client);
  const parent = await client.createRun({
    experimentId,
    name: 'csr',
    startTime: 1_700_000_000_000,
    tags: { kind: 'pipeline' },
  });
  t.is(parent.info.status, 'RUNNING');
  t.is(parent.info.startTime, 1_700_000_000_000);
  t.is(parent.info.runName, 'csr');
  t.is(parent.data.tags.kind, 'pipeline');

  const child = await client.createRun({ experimentId, name: 'iteration-1', parentRunId: parent.info.runId });
  const fetched = await client.getRun(child.info.runId);
  t.is(fetched.data.tags[PARENT_RUN_TAG], parent.info.runId);
  t.is(fetched.info.experimentId, experimentId);

  const ended = await client.setTerminated(child.info.runId, 'FAILED', 1_700_000_100_000);
  t.is(ended.status, 'FAILED');
  t.is(ended.endTime, 1_700_000_100_000);
  await client.setTerminated(parent.info.runId);
  t.is((await client.getRun(parent.info.runId)).info.status, 'FINISHED');

  const children = await client.findRunsByTags([experimentId], { [PARENT_RUN_TAG]: parent.info.runId });
  t.deepEqual(
    children.map((run) => run.info.runId),
    [child.info.runId],
  );
});

test('log-batch of 2500 metrics, 150 params and 120 tags arrives completely, and again without duplicates', async (t) => {
  const client = t.context.mlflow.client();
  const experimentId = await experiment(client);
  const { runId } = (await client.createRun({ experimentId, name: 'big-batch' })).info;
  const metrics: MetricInput[] = Array.from({ length: 2500 }, (_, step) => ({
    key: 'loss',
    value: 1 / (step + 1),
    step,
    timestamp: 1_700_000_000_000 + step,
  }));
  metrics.push(
    { key: 'weird', value: Number.NaN, step: 0, timestamp: 1 },
    { key: 'weird', value: Infinity, step: 1, timestamp: 2 },
  );
  const params = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`p${i}`, i]));
  const tags = Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`t${i}`, `v${i}`]));

  await client.logBatch(runId, { metrics, params, tags });
  // An activity retry repeats the whole call: MLflow must keep each point once and accept the unchanged params.
  await client.logBatch(runId, { metrics, params, tags });

  const history = await client.getMetricHistory(runId, 'loss');
  t.is(history.length, 2500);
  t.deepEqual(
    history.map((m) => m.step).sort((a, b) => a - b),
    metrics.slice(0, 2500).map((m) => m.step),
  );
  t.is(history.find((m) => m.step === 1999)?.value, 1 / 2000);
  // JSON cannot carry NaN or Infinity; both must still arrive. MLflow's SQL store keeps infinity as the largest double.
  const weird = await client.getMetricHistory(runId, 'weird');
  t.deepEqual(
    weird.sort((a, b) => a.step - b.step).map((m) => m.value),
    [Number.NaN, Number.MAX_VALUE],
  );
  const run = await client.getRun(runId);
  t.deepEqual(run.data.metrics.loss, { key: 'loss', value: 1 / 2500, step: 2499, timestamp: 1_700_000_002_499 });
  t.is(Object.keys(run.data.params).length, 150);
  t.is(run.data.params.p149, '149');
  t.is(run.data.tags.t119, 'v119');
});

test('params: re-logging the same value succeeds, changing it fails with a typed error', async (t) => {
  const client = t.context.mlflow.client();
  const { runId } = (await client.createRun({ experimentId: await experiment(client) })).info;
  await client.logBatch(runId, { params: { lr: 0.001, model: 'toy' } });
  await client.logBatch(runId, { params: { lr: 0.001 } });
  const error = await t.throwsAsync(client.logBatch(runId, { params: { lr: 0.01 } }), { instanceOf: MlflowError });
  t.is(error?.status, 400);
  t.is(error?.errorCode, 'INVALID_PARAMETER_VALUE');
  t.is(error?.endpoint, 'POST /api/2.0/mlflow/runs/log-batch');
  t.false(error?.retryable);
  t.deepEqual((await client.getRun(runId)).data.params, { lr: '0.001', model: 'toy' });
});

test('set-tag sets and overwrites a tag', async (t) => {
  const client = t.context.mlflow.client();
  const { runId } = (await client.createRun({ experimentId: await experiment(client) })).info;
  await client.setTag(runId, 'csr.phase', 'generate');
  t.is((await client.getRun(runId)).data.tags['csr.phase'], 'generate');
  await client.setTag(runId, 'csr.phase', 'judge');
  t.is((await client.getRun(runId)).data.tags['csr.phase'], 'judge');
});

test('artifacts upload through the proxy, list, and read back byte for byte', async (t) => {
  const { mlflow } = t.context;
  const client = mlflow.client();
  const experimentId = await experiment(client);
  const { runId, artifactUri } = (await client.createRun({ experimentId })).info;
  t.regex(artifactUri, /^mlflow-artifacts:\//);

  await client.uploadArtifact(runId, 'notes/hello world.txt', 'hello, artifacts\n');
  const local = path.join(tempDir(t, 'csr-artifact-'), 'pixel.png');
  fs.writeFileSync(local, PNG);
  await client.logArtifactFile(runId, local, 'plots/pixel.png');

  const root = await client.listArtifacts(runId);
  t.deepEqual(root.map((f) => [f.path, f.isDir]).sort(), [
    ['notes', true],
    ['plots', true],
  ]);
  const plots = await client.listArtifacts(runId, 'plots');
  t.deepEqual(plots, [{ path: 'plots/pixel.png', isDir: false, fileSize: PNG.length }]);

  t.deepEqual(await client.downloadArtifact(runId, 'plots/pixel.png'), PNG);
  t.is((await client.downloadArtifact(runId, 'notes/hello world.txt')).toString(), 'hello, artifacts\n');
  // The bytes live in the server's artifact store, not anywhere the client wrote.
  const stored = path.join(mlflow.stateDir, 'artifacts', experimentId, runId, 'artifacts', 'plots', 'pixel.png');
  t.deepEqual(fs.readFileSync(stored), PNG);
  await t.throwsAsync(client.uploadArtifact(runId, '../escape.txt', 'x'), { instanceOf: TypeError, message: /\.\./ });
});

test('findOrCreateRun returns the same run on every call, also when callers race', async (t) => {
  const client = t.context.mlflow.client();
  const experimentId = await experiment(client);
  const parent = await client.findOrCreateRun({ experimentId, idempotencyKey: 'wf-1', name: 'csr', tags: { a: '1' } });
  const again = await client.findOrCreateRun({ experimentId, idempotencyKey: 'wf-1', name: 'csr', tags: { a: '1' } });
  t.is(again.info.runId, parent.info.runId);
  t.is(parent.data.tags[IDEMPOTENCY_TAG], 'wf-1');
  t.is(parent.data.tags.a, '1');

  const raced = await Promise.all(
    [1, 2, 3].map(() =>
      client.findOrCreateRun({
        experimentId,
        idempotencyKey: "wf-1/it's-1",
        name: 'iteration-1',
        parentRunId: parent.info.runId,
      }),
    ),
  );
  t.is(new Set(raced.map((run) => run.info.runId)).size, 1, 'every racer settles on one run');
  const live = await client.findRunsByTags([experimentId], { [IDEMPOTENCY_TAG]: "wf-1/it's-1" });
  t.is(live.length, 1, 'losing duplicates are deleted');
  t.is(live[0]?.data.tags[PARENT_RUN_TAG], parent.info.runId);

  await t.throwsAsync(
    client.findOrCreateRun({ experimentId, idempotencyKey: "wf-1/it's-1", name: 'iteration-1', parentRunId: 'other' }),
    { instanceOf: TypeError, message: /already names run .* under parent/ },
  );
});

test('a missing run is a typed, non-retryable error naming the endpoint', async (t) => {
  const client = t.context.mlflow.client();
  const error = await t.throwsAsync(client.getRun('0123456789abcdef0123456789abcdef'), { instanceOf: MlflowError });
  t.is(error?.errorCode, 'RESOURCE_DOES_NOT_EXIST');
  t.is(error?.status, 404);
  t.is(error?.endpoint, 'GET /api/2.0/mlflow/runs/get');
  t.regex(error?.message ?? '', /^GET \/api\/2\.0\/mlflow\/runs\/get: HTTP 404 RESOURCE_DOES_NOT_EXIST: /);
});

test('a response of the wrong shape is rejected with the field named, and not retried', async (t) => {
  const server = await replyingServer(() => ({
    status: 200,
    body: JSON.stringify({ experiment: { experiment_id: 7 } }),
  }));
  t.teardown(server.close);
  const client = new MlflowClient({ trackingUri: server.url, retry: { attempts: 3, initialDelayMs: 10 } });
  const error = await t.throwsAsync(client.getExperimentByName('x'), { instanceOf: MlflowResponseError });
  t.regex(error?.message ?? '', /experiment\.experiment_id: .* \(got 7\)/);
  t.regex(error?.message ?? '', /experiment\.name: .* \(got nothing\)/);
  t.is(server.requests(), 1);
});

test('5xx and 429 are retried with backoff; 4xx are not', async (t) => {
  const flaky = await replyingServer((n) =>
    n === 1
      ? { status: 503, body: 'busy' }
      : n === 2
        ? { status: 429, body: '{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}' }
        : { status: 200, body: JSON.stringify({ experiment_id: '42' }) },
  );
  t.teardown(flaky.close);
  const client = new MlflowClient({ trackingUri: flaky.url, retry: { attempts: 4, initialDelayMs: 20 } });
  t.is(await client.createExperiment('x'), '42');
  t.is(flaky.requests(), 3);

  const refusing = await replyingServer(() => ({
    status: 400,
    body: '{"error_code":"INVALID_PARAMETER_VALUE","message":"no"}',
  }));
  t.teardown(refusing.close);
  const strict = new MlflowClient({ trackingUri: refusing.url, retry: { attempts: 4, initialDelayMs: 20 } });
  await t.throwsAsync(strict.createExperiment('x'), {
    instanceOf: MlflowError,
    message: /HTTP 400 INVALID_PARAMETER_VALUE: no/,
  });
  t.is(refusing.requests(), 1);
});

test('an unreachable server is a retryable MlflowUnreachableError after the configured attempts', async (t) => {
  const port = await freePort();
  const client = new MlflowClient({
    trackingUri: `http://127.0.0.1:${port}`,
    retry: { attempts: 2, initialDelayMs: 10 },
  });
  const error = await t.throwsAsync(client.getRun('r'), { instanceOf: MlflowUnreachableError });
  t.true(error?.retryable);
  t.is(error?.status, undefined);
  t.regex(error?.message ?? '', /ECONNREFUSED/);
  t.regex(error?.message ?? '', /gave up after 2 attempts/);
});

test('the resilient tracker sets a refused write aside with a warning instead of throwing', async (t) => {
  const { mlflow } = t.context;
  const warnings: string[] = [];
  const spoolDir = tempDir(t, 'csr-spool-');
  const tracker = new ResilientTracker({ client: mlflow.client(), spoolDir, warn: (m) => warnings.push(m) });
  t.teardown(() => tracker.close());
  await tracker.logBatch('0123456789abcdef0123456789abcdef', { metrics: [{ key: 'x', value: 1 }] });
  t.is(tracker.pending, 0);
  t.is(warnings.length, 1);
  t.regex(
    warnings[0] ?? '',
    /could not log log-batch to run 0123.* \(1 metrics, 0 params, 0 tags\) and will not retry it/,
  );
  t.regex(warnings[0] ?? '', /RESOURCE_DOES_NOT_EXIST/);
  t.is(fs.readdirSync(path.join(spoolDir, 'rejected')).filter((f) => f.endsWith('.json')).length, 1);
});
