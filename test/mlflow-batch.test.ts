/** The pure parts of the MLflow client: batch splitting, filter quoting, artifact paths. No server needed. */
import test from 'ava';
import {
  BATCH_LIMITS,
  encodeArtifactPath,
  proxyRoot,
  resolveRetryOptions,
  splitBatch,
  tagEquals,
  tagsFilter,
  toWireBatch,
  type WireBatch,
} from '../src/mlflow';

function withinLimits(t: import('ava').ExecutionContext, chunks: WireBatch[]) {
  for (const [i, chunk] of chunks.entries()) {
    const entities = chunk.metrics.length + chunk.params.length + chunk.tags.length;
    t.true(entities > 0, `chunk ${i} is not empty`);
    t.true(chunk.metrics.length <= BATCH_LIMITS.metrics, `chunk ${i}: ${chunk.metrics.length} metrics`);
    t.true(chunk.params.length <= BATCH_LIMITS.params, `chunk ${i}: ${chunk.params.length} params`);
    t.true(chunk.tags.length <= BATCH_LIMITS.tags, `chunk ${i}: ${chunk.tags.length} tags`);
    t.true(entities <= BATCH_LIMITS.entities, `chunk ${i}: ${entities} entities`);
    const bytes = Buffer.byteLength(JSON.stringify({ run_id: 'x'.repeat(32), ...chunk }));
    t.true(bytes < 1_000_000, `chunk ${i}: ${bytes} bytes`);
  }
}

test('a large batch splits into requests within every MLflow limit, nothing lost or reordered', (t) => {
  const batch = toWireBatch(
    {
      metrics: Array.from({ length: 2500 }, (_, step) => ({ key: 'loss', value: step, step })),
      params: Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`p${i}`, i])),
      tags: Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`t${i}`, 'v'])),
    },
    1_700_000_000_000,
  );
  const chunks = splitBatch(batch);
  withinLimits(t, chunks);
  t.deepEqual(
    chunks.flatMap((c) => c.metrics),
    batch.metrics,
  );
  t.deepEqual(
    chunks.flatMap((c) => c.params),
    batch.params,
  );
  t.deepEqual(
    chunks.flatMap((c) => c.tags),
    batch.tags,
  );
  t.true(chunks.length >= 4, `${chunks.length} chunks`);
});

test('long params and tags split by request size before the count limits are reached', (t) => {
  const batch = toWireBatch({
    params: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`p${i}`, 'x'.repeat(6000)])),
    tags: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`t${i}`, 'y'.repeat(8000)])),
  });
  const chunks = splitBatch(batch);
  withinLimits(t, chunks);
  t.is(chunks.length, 2);
  t.is(chunks.flatMap((c) => [...c.params, ...c.tags]).length, 200);
});

test('defaults are fixed once, non-finite values become the strings MLflow parses, bad input is refused', (t) => {
  const wire = toWireBatch(
    {
      metrics: [
        { key: 'a', value: Number.NaN },
        { key: 'b', value: -Infinity, step: 3, timestamp: 5.4 },
      ],
    },
    42,
  );
  t.deepEqual(wire.metrics, [
    { key: 'a', value: 'NaN', timestamp: 42, step: 0 },
    { key: 'b', value: '-Infinity', timestamp: 5, step: 3 },
  ]);
  t.deepEqual(toWireBatch({ params: { lr: 0.001, lora: true } }).params, [
    { key: 'lr', value: '0.001' },
    { key: 'lora', value: 'true' },
  ]);
  t.throws(() => toWireBatch({ metrics: [{ key: 'a', value: '1' as unknown as number }] }), {
    instanceOf: TypeError,
    message: 'metrics[0] (a).value: expected a number, got "1"',
  });
  t.throws(() => toWireBatch({ metrics: [{ key: 'a', value: 1, step: 0.5 }] }), {
    message: /step: expected an integer/,
  });
  t.deepEqual(splitBatch(toWireBatch({})), []);
});

test('filter values are quoted with the quote they do not contain; unquotable values are refused', (t) => {
  t.is(tagEquals('mlflow.parentRunId', 'abc'), "tags.`mlflow.parentRunId` = 'abc'");
  t.is(tagEquals('k', "it's"), 'tags.`k` = "it\'s"');
  t.throws(() => tagEquals('k', `it's "x"`), { instanceOf: TypeError, message: /both ' and "/ });
  t.throws(() => tagEquals('k', 'a\\b'), { instanceOf: TypeError, message: /backslash/ });
  t.throws(() => tagEquals('a`b', 'v'), { instanceOf: TypeError, message: /backticks/ });
  t.is(tagsFilter({ a: '1', b: '2' }), "tags.`a` = '1' AND tags.`b` = '2'");
});

test('artifact URIs map to the proxy path; other stores are refused with the fix', (t) => {
  t.is(proxyRoot('mlflow-artifacts:/1/abc/artifacts', 'abc'), '1/abc/artifacts');
  t.is(proxyRoot('mlflow-artifacts://mlflow:5000/7/abc/artifacts/', 'abc'), '7/abc/artifacts');
  t.is(proxyRoot('http://mlflow:5000/api/2.0/mlflow-artifacts/artifacts/7/abc/artifacts', 'abc'), '7/abc/artifacts');
  t.throws(() => proxyRoot('/var/mlruns/1/abc/artifacts', 'abc'), {
    message: /does not proxy; start the server with --serve-artifacts/,
  });
  t.throws(() => proxyRoot('s3://bucket/1/abc/artifacts', 'abc'), { message: /s3:\/\/bucket/ });
  t.is(encodeArtifactPath('plots/loss curve.png'), 'plots/loss%20curve.png');
  t.throws(() => encodeArtifactPath('/etc/passwd'), { instanceOf: TypeError });
  t.throws(() => encodeArtifactPath('a/../../b'), { instanceOf: TypeError });
  t.throws(() => encodeArtifactPath(''), { instanceOf: TypeError, message: /empty path/ });
});

test('retry options are checked', (t) => {
  t.deepEqual(resolveRetryOptions(), { attempts: 5, initialDelayMs: 250, maxDelayMs: 8000 });
  t.throws(() => resolveRetryOptions({ attempts: 0 }), { message: /attempts: expected an integer >= 1, got 0/ });
  t.throws(() => resolveRetryOptions({ initialDelayMs: 100, maxDelayMs: 10 }), {
    message: /initialDelayMs <= maxDelayMs/,
  });
});
