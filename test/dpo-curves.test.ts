/**
 * DPO curves reach MLflow exactly once: the step writes them to metrics.jsonl (it never talks to
 * MLflow) and the workflow's tracker delivers that file through its spool, with the timestamps the step
 * fixed, so points a cut-off earlier delivery got through are not doubled and the rest arrive.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { dpoCurvePoints } from '../activities/dpo-curves';
import { ResilientTracker } from '../src/mlflow';
import { type MlflowHarness, startMlflowHarness } from './helpers/mlflow-harness';
import { tempDir } from './helpers/temporal-harness';

const test = anyTest as TestFn<{ mlflow: MlflowHarness }>;

test.before(async (t) => {
  t.context.mlflow = await startMlflowHarness();
});

test.after.always(async (t) => {
  await t.context.mlflow?.close();
});

test('curves delivered in part before an outage, then again from metrics.jsonl: every step once', async (t) => {
  const dir = tempDir();
  // What the DPO step writes: one record per logged step, the last one torn by a kill, one from an older version.
  const records = Array.from({ length: 6 }, (_, i) => ({
    step: i + 1,
    epoch: (i + 1) / 6,
    loss: 0.69 - i * 0.05,
    'rewards/margins': i * 0.1,
    time_ms: 1_700_000_000_000 + i * 1000,
  }));
  fs.writeFileSync(
    path.join(dir, 'metrics.jsonl'),
    `${records.map((r) => JSON.stringify(r)).join('\n')}\n{"step": 0, "loss": 1.0}\n{"step": 7, "lo`,
  );
  const points = dpoCurvePoints(dir);
  t.is(points.length, 6 * 3, 'epoch, loss and rewards/margins of the six complete records');

  const client = t.context.mlflow.client();
  const experimentId = await client.createExperiment('dpo-curves');
  const runId = (await client.createRun({ experimentId, name: 'iteration 1' })).info.runId;
  // An earlier delivery (a retried activity's first attempt) got the first three steps through before MLflow went away.
  await client.logWireBatch(runId, {
    metrics: points.filter((p) => p.step <= 3),
    params: [],
    tags: [],
  });
  const tracker = new ResilientTracker({ client, spoolDir: path.join(dir, 'spool'), warn: () => undefined });
  t.teardown(() => tracker.close());
  await tracker.logBatch(runId, { metrics: dpoCurvePoints(dir) });
  t.is((await tracker.flush()).pending, 0);
  for (const key of ['dpo/loss', 'dpo/rewards/margins', 'dpo/epoch']) {
    const history = await client.getMetricHistory(runId, key);
    t.deepEqual(
      history.map((m) => m.step).sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6],
      `${key}: each step once`,
    );
  }
});

test("the last step's training and evaluation records share `epoch`: one point per name and step", (t) => {
  const dir = tempDir();
  const lines = [
    { step: 6, epoch: 1, loss: 0.68, time_ms: 1_700_000_000_000 },
    { step: 6, epoch: 1, eval_loss: 0.69, time_ms: 1_700_000_004_000 },
  ];
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), lines.map((r) => `${JSON.stringify(r)}\n`).join(''));
  const points = dpoCurvePoints(dir);
  t.deepEqual(
    points.map((p) => `${p.key}@${p.step}`),
    ['dpo/epoch@6', 'dpo/loss@6', 'dpo/eval_loss@6'],
  );
});
