/**
 * What the MLflow UI opens on: experiments are marked as model training (not MLflow 3's GenAI traces
 * page), and the links the CLI prints go to the run's own page in the UI's model-training mode.
 */
import { randomUUID } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { EXPERIMENT_KIND, EXPERIMENT_KIND_TAG } from '../src/mlflow';
import { mlflowPage, mlflowRunRefs, uiLinks } from '../app/cli/output';
import { startMlflowHarness, type MlflowHarness } from './helpers/mlflow-harness';

const test = anyTest as TestFn<{ mlflow: MlflowHarness }>;

test.before(async (t) => {
  t.context.mlflow = await startMlflowHarness();
});
test.after.always(async (t) => {
  await t.context.mlflow?.close();
});

test('a new experiment is marked as model training, and an older one without the mark gets it', async (t) => {
  const client = t.context.mlflow.client();
  const created = await client.getOrCreateExperiment(`kind-${randomUUID()}`);
  t.is(created.tags[EXPERIMENT_KIND_TAG], 'custom_model_development');
  t.is((await client.getExperimentByName(created.name))?.tags[EXPERIMENT_KIND_TAG], EXPERIMENT_KIND);

  const older = `older-${randomUUID()}`;
  await client.createExperiment(older); // as the code before this change created them
  t.is((await client.getExperimentByName(older))?.tags[EXPERIMENT_KIND_TAG], undefined);
  await client.getOrCreateExperiment(older);
  t.is((await client.getExperimentByName(older))?.tags[EXPERIMENT_KIND_TAG], EXPERIMENT_KIND);
});

test("the printed MLflow link is the run's page in model-training mode", async (t) => {
  t.is(mlflowPage('http://127.0.0.1:5000/', '7', 'abc'), 'http://127.0.0.1:5000/#/experiments/7/runs/abc?workflowType=machine_learning');
  t.is(mlflowPage('http://127.0.0.1:5000'), 'http://127.0.0.1:5000/#/experiments?workflowType=machine_learning');
  const client = t.context.mlflow.client();
  const experiment = await client.getOrCreateExperiment(`links-${randomUUID()}`);
  process.env.MLFLOW_TRACKING_URI = t.context.mlflow.url;
  const refs = await mlflowRunRefs({ experimentName: experiment.name, runId: 'r1' });
  t.deepEqual(refs, { experimentId: experiment.experimentId, runId: 'r1' });
  t.is(uiLinks('w', refs)[1], `MLflow UI:   ${t.context.mlflow.url}/#/experiments/${experiment.experimentId}/runs/r1?workflowType=machine_learning`);
  t.is(await mlflowRunRefs({ experimentName: `missing-${randomUUID()}` }), undefined);
  process.env.MLFLOW_TRACKING_URI = 'http://127.0.0.1:1';
  t.is(await mlflowRunRefs({ experimentName: experiment.name }), undefined, 'no MLflow: the plain link, no error');
});
