/**
 * MLflow auth from the environment against a real MLflow server running its basic-auth app: the
 * official variables and `user:pass@` in MLFLOW_TRACKING_URI both work, a client without them is
 * refused, and no secret value reaches MLflow params or tags, the logs, or what the tracking
 * activities return (which is what workflow history stores).
 */
import anyTest, { type TestFn } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTrackingActivities } from '../activities/tracking';
import { parseConfig } from '../src/config';
import { csrEnv } from '../src/env';
import { MlflowClient } from '../src/mlflow';
import { redactUri, splitCredentials } from '../src/mlflow/auth';
import { freePort } from '../app/stack/free-port';
import { startMlflowServer, stopMlflowServer, type MlflowServerHandle } from '../app/stack/mlflow-server';
import { Worker } from '@temporalio/worker';
import { createTestEnv } from './helpers/temporal-harness';

const PASSWORD = 'pa55-w0rd-that-must-not-leak';
const JUDGE_KEY = 'sk-judge-key-that-must-not-leak';

interface Context {
  server: MlflowServerHandle;
  stateDir: string;
}
const test = anyTest.serial as TestFn<Context>;

test.before(async (t) => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-mlflow-auth-'));
  const server = await startMlflowServer({
    stateDir,
    port: await freePort(),
    basicAuth: { username: 'csr', password: PASSWORD, secretKey: 'test-secret-key' },
  });
  t.context = { server, stateDir };
});

test.after.always(async (t) => {
  if (t.context.stateDir) await stopMlflowServer(path.join(t.context.stateDir, 'mlflow.pid'));
});

const withCredentials = (url: string) => url.replace('http://', `http://csr:${encodeURIComponent(PASSWORD)}@`);

test('a client without credentials is refused; the official variables and user:pass@ both get in', async (t) => {
  const url = t.context.server.url;
  const anonymous = new MlflowClient({ trackingUri: url, retry: { attempts: 1 } }, {});
  const refused = await t.throwsAsync(anonymous.getExperimentByName('Default'));
  t.regex(refused?.message ?? '', /401|Unauthorized|credentials/i);

  const byVariables = new MlflowClient({ trackingUri: url }, { MLFLOW_TRACKING_USERNAME: 'csr', MLFLOW_TRACKING_PASSWORD: PASSWORD });
  t.is((await byVariables.getExperimentByName('Default'))?.name, 'Default');

  const byUri = new MlflowClient({ trackingUri: withCredentials(url) }, {});
  t.is((await byUri.getExperimentByName('Default'))?.name, 'Default');
  t.false(byUri.trackingUri.includes(PASSWORD), 'the URI a client shows carries no password');

  // csrEnv strips the URI; the client finds the credentials in MLFLOW_TRACKING_URI itself.
  const env = { MLFLOW_TRACKING_URI: withCredentials(url) };
  t.is(csrEnv(env).mlflowUri, url);
  t.is((await new MlflowClient({ trackingUri: csrEnv(env).mlflowUri }, env).getExperimentByName('Default'))?.name, 'Default');
});

test('no secret reaches MLflow params or tags, the logs, or what the activities return to the workflow', async (t) => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-secrets-home-'));
  process.env.MLFLOW_TRACKING_URI = withCredentials(t.context.server.url);
  process.env.CSR_JUDGE_KEY_ENVS = 'CSR_TEST_JUDGE_KEY';
  process.env.CSR_TEST_JUDGE_KEY = JUDGE_KEY;
  const env = csrEnv({ ...process.env, CSR_HOME: home });
  const config = parseConfig({
    name: 'secrets',
    iterations: 1,
    model: { source: 'toyworld' },
    clip: { source: 'toyworld' },
    evaluate: { judge: { url: 'https://judge.example/v1', model: 'm', api_key_env: 'CSR_TEST_JUDGE_KEY' } },
  });

  const written: string[] = [];
  const capture = (stream: NodeJS.WriteStream) => {
    const original = stream.write.bind(stream);
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      written.push(String(chunk));
      return (original as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof stream.write;
    return () => void (stream.write = original);
  };
  const restore = [capture(process.stdout), capture(process.stderr)];
  let returned: unknown[];
  try {
    const activities = createTrackingActivities(env);
    const refs = await activities.trackRunStart({ config, configHash: 'h', runKey: 'secrets-run', workflowId: 'wf-secrets' });
    const iteration = await activities.trackIterationStart({ tracking: refs, runKey: 'secrets-run', iteration: 1, workflowId: 'wf-secrets' });
    returned = [refs, iteration];
  } finally {
    for (const undo of restore) undo();
  }

  const client = new MlflowClient({ trackingUri: t.context.server.url }, { MLFLOW_TRACKING_USERNAME: 'csr', MLFLOW_TRACKING_PASSWORD: PASSWORD });
  const parentRunId = (returned[0] as { parentRunId?: string }).parentRunId;
  t.truthy(parentRunId, 'the run was created through basic auth');
  const run = await client.getRun(parentRunId!);
  const stored = JSON.stringify(run.data);
  t.true(stored.includes('CSR_TEST_JUDGE_KEY'), 'the params hold the variable name');
  for (const secret of [PASSWORD, encodeURIComponent(PASSWORD), JUDGE_KEY]) {
    t.false(stored.includes(secret), 'MLflow params and tags');
    t.false(JSON.stringify(returned).includes(secret), 'activity results (workflow history)');
    t.false(written.join('').includes(secret), 'logs');
  }
  // The results were looked at: they hold the iteration's MLflow run (no URI any more: no step talks to MLflow).
  t.truthy((returned[1] as { runId?: string }).runId, 'the iteration run was created');
});

test('no secret reaches workflow history when a workflow runs the tracking activities', async (t) => {
  const temporal = await createTestEnv('ERROR');
  try {
    process.env.MLFLOW_TRACKING_URI = withCredentials(t.context.server.url);
    const env = csrEnv({ ...process.env, CSR_HOME: fs.mkdtempSync(path.join(os.tmpdir(), 'csr-secrets-wf-')) });
    const worker = await Worker.create({
      connection: temporal.nativeConnection,
      taskQueue: 'secrets',
      workflowsPath: require.resolve('./workflows/tracking-workflows'),
      activities: createTrackingActivities(env),
    });
    const config = parseConfig({ name: 'secrets-wf', iterations: 1, model: { source: 'toyworld' }, clip: { source: 'toyworld' } });
    const handle = await temporal.client.workflow.start('trackOnly', { taskQueue: 'secrets', workflowId: 'secrets-wf', args: [config, 'secrets-wf'] });
    const [refs] = await worker.runUntil(handle.result());
    t.truthy((refs as { parentRunId?: string }).parentRunId, 'MLflow answered through basic auth');
    // Payload bytes come out of the history as base64: decode every payload so the text can be searched.
    const raw = JSON.stringify(await handle.fetchHistory());
    const history = raw + [...raw.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8')).join('\n');
    t.true(history.includes((refs as { parentRunId: string }).parentRunId), 'the decoded history holds what MLflow returned');
    t.false(history.includes(PASSWORD) || history.includes(encodeURIComponent(PASSWORD)), 'but not the password');
  } finally {
    await temporal.teardown();
  }
});

test('URIs are printed without credentials', (t) => {
  t.is(redactUri('https://u:p@mlflow.example/x'), 'https://***@mlflow.example/x');
  t.is(redactUri('http://127.0.0.1:5000'), 'http://127.0.0.1:5000');
  t.deepEqual(splitCredentials('https://u:p%40ss@h:1/'), { uri: 'https://h:1/', username: 'u', password: 'p@ss' });
});
