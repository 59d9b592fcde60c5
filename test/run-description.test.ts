/**
 * What a person sees of a run in MLflow, on a real MLflow server: the parent run's description, its
 * per-iteration curate/DPO trends and headline plot, and iteration runs without one-point charts (their DPO curves
 * logged by the closing record or, as soon as DPO has finished, by trackDpoCurves).
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTrackingActivities, plotPanels } from '../activities/tracking';
import { loadConfig } from '../src/config';
import { csrEnv } from '../src/env';
import { type MlflowHarness, startMlflowHarness } from './helpers/mlflow-harness';
import { repoRoot } from './helpers/temporal-harness';

const test = anyTest as TestFn<{ mlflow: MlflowHarness }>;

test.before(async (t) => {
  t.context.mlflow = await startMlflowHarness();
});

test.after.always(async (t) => {
  await t.context.mlflow?.close();
});

/** A run started on the test's MLflow server, with a CSR_HOME of its own. */
async function startedRun(t: ExecutionContext<{ mlflow: MlflowHarness }>, runKey: string) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `csr-${runKey}-`));
  const env = csrEnv({ ...process.env, CSR_HOME: home, MLFLOW_TRACKING_URI: t.context.mlflow.url });
  const config = loadConfig(path.join(repoRoot, 'configs', 'toy.yaml'));
  const activities = createTrackingActivities(env);
  const tracking = await activities.trackRunStart({ config, configHash: 'h', runKey, workflowId: 'wf' });
  return { home, activities, tracking };
}

test("trackRunStart gives the parent run a description naming the config, the iterations and the objective's direction", async (t) => {
  const { tracking } = await startedRun(t, 'described-run');
  const run = await t.context.mlflow.client().getRun(tracking.parentRunId!);
  const description = run.data.tags['mlflow.note.content'] ?? '';
  t.true(description.startsWith('CSR run of toy-csr: 3 iterations'), description);
  t.true(description.includes('Objective: toy_chair_dev/CHAIR_I (lower is better).'), description);
  t.true(description.includes('toy_chair_test'), description);
  t.true(description.includes('described-run'), description);
});

test('trackIterationEnd: curate/DPO trends on the parent by iteration, iteration runs keep the DPO curves and put the rest in one JSON', async (t) => {
  const mlflow = t.context.mlflow;
  const { home, activities, tracking } = await startedRun(t, 'trends-run');
  const childIds: string[] = [];
  for (const iteration of [0, 1, 2]) {
    const child = await activities.trackIterationStart({ tracking, runKey: 'trends-run', iteration, workflowId: 'wf' });
    childIds.push(child.runId!);
    let dpoDir: string | undefined;
    const stats: Record<string, number> = {};
    if (iteration > 0) {
      dpoDir = fs.mkdtempSync(path.join(home, 'dpo-'));
      const records = [1, 2, 3].map((step) => ({ step, loss: 0.69 - step * 0.1, 'rewards/margins': step * 0.2, time_ms: 1_700_000_000_000 + step }));
      fs.writeFileSync(path.join(dpoDir, 'metrics.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
      Object.assign(stats, {
        'curate/prompts': 40,
        'curate/pairs': 30 + iteration,
        'curate/dropped_tie': 4,
        'curate/gap_mean': 0.1 * iteration,
        'curate/chosen_len_mean': 12.5,
        'dpo/last_loss': 0.5 / iteration,
        'dpo/last_margin': 0.3 * iteration,
        'dpo/last_accuracy': 0.8,
        'dpo/steps': 3,
      });
    }
    await activities.trackIterationEnd({
      tracking,
      iterationRunId: child.runId,
      iteration,
      metrics: { 'toy_chair_dev/CHAIR_I': 0.3 - 0.05 * iteration, 'toy_chair_dev/recall': 0.6 + 0.01 * iteration, 'toy_chair_dev/responses': 50 },
      stats,
      dpoDir,
      evaluateDirs: [],
      artifactRoot: home,
      timestamp: 1_700_000_000_000 + iteration,
    });
  }
  const client = mlflow.client();
  const parentId = tracking.parentRunId!;
  const byStep = async (runId: string, key: string) =>
    (await client.getMetricHistory(runId, key)).map((m) => [m.step, m.value]).sort((a, b) => a[0]! - b[0]!);
  t.deepEqual(await byStep(parentId, 'curate/pairs'), [[1, 31], [2, 32]]);
  t.deepEqual(await byStep(parentId, 'curate/mean_gap'), [[1, 0.1], [2, 0.2]]);
  t.deepEqual(await byStep(parentId, 'dpo/final_loss'), [[1, 0.5], [2, 0.25]]);
  t.deepEqual(await byStep(parentId, 'dpo/reward_margin'), [[1, 0.3], [2, 0.6]]);
  t.deepEqual(await byStep(parentId, 'dpo/reward_accuracy'), [[1, 0.8], [2, 0.8]]);
  const parentKeys = Object.keys((await client.getRun(parentId)).data.metrics);
  t.false(parentKeys.some((k) => k === 'curate/prompts' || k === 'curate/dropped_tie'), parentKeys.join(', '));

  // An iteration run: the DPO curves (many points) and nothing of one point; the statistics are one JSON.
  const child = await client.getRun(childIds[1]!);
  t.deepEqual(Object.keys(child.data.metrics).sort(), ['dpo/loss', 'dpo/rewards/margins'], 'only curves');
  t.is((await client.getMetricHistory(childIds[1]!, 'dpo/loss')).length, 3);
  const stats = JSON.parse((await client.downloadArtifact(childIds[1]!, 'iteration_stats.json')).toString('utf8')) as Record<string, number>;
  t.is(stats['curate/pairs'], 31);
  t.is(stats['curate/chosen_len_mean'], 12.5);
  t.is(stats['dpo/last_loss'], 0.5);
  t.is(stats['eval/toy_chair_dev/CHAIR_I'], 0.25);
  t.deepEqual(Object.keys((await client.getRun(childIds[0]!)).data.metrics), [], 'iteration 0 has no curves and no one-point charts');

  // The headline plot of the parent run.
  const plots = await client.listArtifacts(parentId, 'plots');
  t.true(plots.some((a) => a.path === 'plots/eval_metrics.png'), JSON.stringify(plots));
});

test("trackIterationEnd logs the curate step's own sample (curate.sample_size pairs), and writes nothing into its folder", async (t) => {
  const { home, activities, tracking } = await startedRun(t, 'sample-run');
  const child = await activities.trackIterationStart({ tracking, runKey: 'sample-run', iteration: 1, workflowId: 'wf' });
  // As curate writes them with sample_size 3: 30 pairs, the first 3 in the sample.
  const curateDir = fs.mkdtempSync(path.join(home, 'curate-'));
  const pairs = Array.from({ length: 30 }, (_, i) => `${JSON.stringify({ prompt_id: `p${i}` })}\n`);
  fs.writeFileSync(path.join(curateDir, 'pairs.jsonl'), pairs.join(''));
  fs.writeFileSync(path.join(curateDir, 'pairs_sample.jsonl'), pairs.slice(0, 3).join(''));
  const before = fs.readdirSync(curateDir).sort();
  await activities.trackIterationEnd({
    tracking,
    iterationRunId: child.runId,
    iteration: 1,
    metrics: {},
    stats: {},
    curateDir,
    evaluateDirs: [],
    artifactRoot: home,
    timestamp: 1_700_000_000_000,
  });
  const logged = (await t.context.mlflow.client().downloadArtifact(child.runId!, 'preference_pairs_sample.jsonl')).toString('utf8');
  t.is(logged, pairs.slice(0, 3).join(''));
  t.deepEqual(fs.readdirSync(curateDir).sort(), before, 'a finished step folder is not written to');
});

test('the headline plot: the objective first with its direction, then headline metrics that change; no counts, no constant lines', (t) => {
  const line = (values: number[]): [number, number][] => values.map((v, i) => [i, v]);
  const panels = plotPanels(
    {
      'eval/pope/adversarial/accuracy': line([0.7, 0.72, 0.75]),
      'eval/toy_chair_dev/recall': line([0.6, 0.61, 0.62]),
      'eval/toy_chair_dev/CHAIR_S': line([0.5, 0.5, 0.5]),
      'eval/toy_chair_dev/responses': line([50, 51, 52]),
      'eval/pope/random/yes_ratio': line([0.4, 0.5, 0.6]),
      'eval/toy_chair_dev/CHAIR_I': [[2, 0.2], [0, 0.3], [1, 0.25]],
    },
    'toy_chair_dev/CHAIR_I',
    'minimize',
  );
  t.deepEqual(
    panels.map((p) => [p.title, p.direction, p.objective]),
    [
      ['toy_chair_dev/CHAIR_I', 'minimize', true],
      ['toy_chair_dev/recall', 'maximize', false],
      ['pope/adversarial/accuracy', 'maximize', false],
    ],
  );
  t.deepEqual(panels[0]!.points, [[0, 0.3], [1, 0.25], [2, 0.2]], 'by iteration');
  // Iteration 0 alone (or nothing changed, no objective): the headline metrics still make a plot.
  const start = plotPanels({ 'eval/toy_chair/CHAIR_I': [[0, 0.3]], 'eval/toy_chair/responses': [[0, 50]] });
  t.deepEqual(start.map((p) => [p.title, p.direction]), [['toy_chair/CHAIR_I', 'minimize']]);
});

test('trackDpoCurves logs the DPO curves on the iteration run once DPO has finished; the closing record then adds none', async (t) => {
  const { home, activities, tracking } = await startedRun(t, 'curves-run');
  const child = await activities.trackIterationStart({ tracking, runKey: 'curves-run', iteration: 1, workflowId: 'wf' });
  const dpoDir = fs.mkdtempSync(path.join(home, 'dpo-'));
  const records = [1, 2, 3].map((step) => ({ step, loss: 0.69 - step * 0.1, time_ms: 1_700_000_000_000 + step }));
  fs.writeFileSync(path.join(dpoDir, 'metrics.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  await activities.trackDpoCurves({ tracking, iterationRunId: child.runId, iteration: 1, dpoDir });
  const client = t.context.mlflow.client();
  t.deepEqual((await client.getMetricHistory(child.runId!, 'dpo/loss')).map((m) => m.step).sort(), [1, 2, 3]);
  await activities.trackIterationEnd({
    tracking,
    iterationRunId: child.runId,
    iteration: 1,
    metrics: { 'toy_chair_dev/CHAIR_I': 0.3 },
    stats: {},
    evaluateDirs: [],
    artifactRoot: home,
    timestamp: 1_700_000_000_000,
  });
  t.is((await client.getMetricHistory(child.runId!, 'dpo/loss')).length, 3, 'each point once');
});
