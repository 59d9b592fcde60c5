/** A run's MLflow parent run carries a description (what the run is, its objective and direction), on a real MLflow server. */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTrackingActivities } from '../activities/tracking';
import { loadConfig } from '../src/config';
import { csrEnv } from '../src/env';
import { startMlflowHarness } from './helpers/mlflow-harness';
import { repoRoot } from './helpers/temporal-harness';

test("trackRunStart gives the parent run a description naming the config, the iterations and the objective's direction", async (t) => {
  const mlflow = await startMlflowHarness();
  try {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-description-'));
    const env = csrEnv({ ...process.env, CSR_HOME: home, MLFLOW_TRACKING_URI: mlflow.url });
    const config = loadConfig(path.join(repoRoot, 'configs', 'toy.yaml'));
    const refs = await createTrackingActivities(env).trackRunStart({ config, configHash: 'h', runKey: 'described-run', workflowId: 'wf' });
    const run = await mlflow.client().getRun(refs.parentRunId!);
    const description = run.data.tags['mlflow.note.content'] ?? '';
    t.true(description.startsWith('CSR run of toy-csr: 3 iterations'), description);
    t.true(description.includes('Objective: toy_chair_dev/CHAIR_I (lower is better).'), description);
    t.true(description.includes('toy_chair_test'), description);
    t.true(description.includes('described-run'), description);
  } finally {
    await mlflow.close();
  }
});
