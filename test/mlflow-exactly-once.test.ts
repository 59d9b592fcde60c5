/**
 * MLflow exactly once, against a real MLflow server behind a real HTTP proxy that can fail the three
 * ways production proxies and networks do: answer 502, hang before answering, or pass the request on
 * and hang after the headers (MLflow applied the write, the client never read the answer). Every metric point must arrive
 * exactly once and in order; buffered writes are retried until delivered and given up only by age.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { MlflowClient, ResilientTracker } from '../src/mlflow';
import { type MlflowHarness, startMlflowHarness } from './helpers/mlflow-harness';
import { tempDir } from './helpers/temporal-harness';

type Mode = 'pass' | '502' | 'hang' | 'apply-then-hang';

/** A proxy to MLflow whose failure mode a test switches; counts log-batch requests MLflow accepted. */
interface Proxy {
  url: string;
  mode: Mode;
  /** log-batch requests that reached MLflow and got 200 from it. */
  appliedBatches: number;
  close(): Promise<void>;
}

async function startProxy(target: string): Promise<Proxy> {
  const upstream = new URL(target);
  const hung: http.ServerResponse[] = [];
  const proxy: Proxy = { url: '', mode: 'pass', appliedBatches: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (proxy.mode === '502') {
        res.writeHead(502, { 'content-type': 'text/html' }).end('<html>502 Bad Gateway</html>');
        return;
      }
      if (proxy.mode === 'hang') {
        hung.push(res);
        return;
      }
      const mode = proxy.mode;
      const forward = http.request(
        { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          const body: Buffer[] = [];
          answer.on('data', (c: Buffer) => body.push(c));
          answer.on('end', () => {
            if (req.url?.includes('/runs/log-batch') && answer.statusCode === 200) proxy.appliedBatches += 1;
            if (mode === 'apply-then-hang') {
              // Headers go out, the body never does: the client times out while reading it.
              res.writeHead(answer.statusCode ?? 502, answer.headers);
              res.flushHeaders();
              hung.push(res);
              return;
            }
            res.writeHead(answer.statusCode ?? 502, answer.headers).end(Buffer.concat(body));
          });
        },
      );
      forward.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = async () => {
    for (const res of hung) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}

const test = anyTest as TestFn<{ mlflow: MlflowHarness }>;

test.before(async (t) => {
  t.context.mlflow = await startMlflowHarness();
});

test.after.always(async (t) => {
  await t.context.mlflow?.close();
});

async function setUp(t: { context: { mlflow: MlflowHarness } }, name: string, extra: { maxAgeMs?: number } = {}) {
  const proxy = await startProxy(t.context.mlflow.url);
  const warnings: string[] = [];
  const client = new MlflowClient({ trackingUri: proxy.url, retry: { attempts: 1 }, timeoutMs: 1500 });
  const tracker = new ResilientTracker({
    client,
    spoolDir: path.join(tempDir('csr-spool-'), 'spool'),
    warn: (m) => warnings.push(m),
    retryIntervalMs: 600_000,
    deliveryRetry: { attempts: 1 },
    ...extra,
  });
  const direct = t.context.mlflow.client();
  const experimentId = await direct.createExperiment(name);
  const runId = (await direct.createRun({ experimentId, name })).info.runId;
  return { proxy, tracker, warnings, direct, runId };
}

const points = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => ({ key: 'loss', value: (from + i) / 100, step: from + i, timestamp: 1_700_000_000_000 + from + i }));

for (const mode of ['502', 'hang', 'apply-then-hang'] as const) {
  test.serial(`an outage of kind "${mode}": every metric point arrives exactly once, in order`, async (t) => {
    const { proxy, tracker, warnings, direct, runId } = await setUp(t, `outage-${mode}`);
    t.teardown(async () => {
      tracker.close();
      await proxy.close();
    });
    await tracker.logBatch(runId, { metrics: points(0, 10) }); // delivered at once
    proxy.mode = mode;
    await tracker.logBatch(runId, { metrics: points(10, 20) });
    await tracker.setTag(runId, 'phase', 'during');
    proxy.mode = 'pass';
    await tracker.logBatch(runId, { metrics: points(20, 30) }); // queued behind the waiting ones: order kept
    await tracker.setTag(runId, 'phase', 'after');
    t.is(tracker.pending, 4, warnings.join('\n'));
    const flushed = await tracker.flush();
    t.deepEqual(flushed, { delivered: 4, pending: 0, rejected: 0 });
    const history = await direct.getMetricHistory(runId, 'loss');
    t.deepEqual(
      history.map((m) => m.step).sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, i) => i),
      'each point once, none missing',
    );
    t.is((await direct.getRun(runId)).data.tags.phase, 'after');
    // 'apply-then-hang': MLflow applied the batch but the answer never came, so it was sent again (3 + 1).
    t.is(proxy.appliedBatches, mode === 'apply-then-hang' ? 4 : 3);
  });
}

test.serial('an artifact logged while writes wait goes behind them at once (no hung request), and arrives once', async (t) => {
  const { proxy, tracker, direct, runId } = await setUp(t, 'artifact-behind');
  t.teardown(async () => {
    tracker.close();
    await proxy.close();
  });
  proxy.mode = 'hang';
  await tracker.logBatch(runId, { metrics: points(0, 5) }); // waits out one timeout (1.5 s), then spooled
  const file = path.join(tempDir('csr-artifact-'), 'plot.png');
  fs.writeFileSync(file, 'first');
  const started = Date.now();
  await tracker.logArtifact(runId, file, 'plots/plot.png');
  t.true(Date.now() - started < 500, `queued without trying the hung server (${Date.now() - started} ms)`);
  fs.writeFileSync(file, 'changed after logging'); // the spool kept its own copy
  t.is(tracker.pending, 2);
  proxy.mode = 'pass';
  t.deepEqual(await tracker.flush(), { delivered: 2, pending: 0, rejected: 0 });
  t.is((await direct.downloadArtifact(runId, 'plots/plot.png')).toString(), 'first');
  t.is((await direct.getMetricHistory(runId, 'loss')).length, 5);
});

test.serial('a 502 for longer than 50 flushes is still retried, and delivered once the proxy recovers', async (t) => {
  const { proxy, tracker, direct, runId } = await setUp(t, 'long-502');
  t.teardown(async () => {
    tracker.close();
    await proxy.close();
  });
  proxy.mode = '502';
  await tracker.logBatch(runId, { metrics: points(0, 5) });
  for (let i = 0; i < 60; i++) t.deepEqual(await tracker.flush(), { delivered: 0, pending: 1, rejected: 0 });
  proxy.mode = 'pass';
  t.deepEqual(await tracker.flush(), { delivered: 1, pending: 0, rejected: 0 });
  t.is((await direct.getMetricHistory(runId, 'loss')).length, 5);
});

test.serial('two trackers on one spool folder deliver each buffered write once', async (t) => {
  const { proxy, tracker, direct, runId } = await setUp(t, 'two-trackers');
  t.teardown(async () => {
    tracker.close();
    await proxy.close();
  });
  proxy.mode = '502';
  for (let i = 0; i < 5; i++) await tracker.logBatch(runId, { metrics: points(i * 10, i * 10 + 10) });
  proxy.mode = 'pass';
  const other = new ResilientTracker({
    client: new MlflowClient({ trackingUri: proxy.url, retry: { attempts: 1 } }),
    spoolDir: tracker.spoolDir,
    warn: () => undefined,
    retryIntervalMs: 600_000,
  });
  t.teardown(() => other.close());
  const [a, b] = await Promise.all([tracker.flush(), other.flush()]);
  t.is(a.delivered + b.delivered, 5);
  t.is(proxy.appliedBatches, 5, 'no batch sent twice');
  t.is((await direct.getMetricHistory(runId, 'loss')).length, 50);
  t.is((await tracker.flush()).pending + (await other.flush()).pending, 0);
});

test.serial('a buffered write is given up only when older than maxAgeMs, with a warning', async (t) => {
  const { proxy, tracker, warnings, runId } = await setUp(t, 'too-old', { maxAgeMs: 300 });
  t.teardown(async () => {
    tracker.close();
    await proxy.close();
  });
  proxy.mode = '502';
  await tracker.logBatch(runId, { metrics: points(0, 3) });
  t.is((await tracker.flush()).pending, 1, 'young: kept');
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.deepEqual(await tracker.flush(), { delivered: 0, pending: 0, rejected: 1 });
  t.true(warnings.some((w) => /gave up on buffered log-batch .* more than maxAgeMs \(300 ms\)/.test(w)), warnings.join('\n'));
});
