/**
 * The MLflow server's lifecycle and what must survive it: runs across a restart, and writes made
 * while the server is down. Serial, because the tests stop and start the file's one server.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { IDEMPOTENCY_TAG, MlflowClient, PARENT_RUN_TAG, ResilientTracker, type RunSpec } from '../src/mlflow';
import { freePort, portFree } from '../app/stack/free-port';
import { startMlflowServer } from '../app/stack/mlflow-server';
import { groupAlive } from '../app/stack/process-group';
import { startMlflowHarness, tempDir, type MlflowHarness } from './helpers/mlflow-harness';

const test = anyTest as TestFn<{ mlflow: MlflowHarness }>;

test.before(async (t) => {
  t.context.mlflow = await startMlflowHarness();
});

test.after.always(async (t) => {
  await t.context.mlflow?.close();
});

test.serial('the server writes its pid file, answers /version, and a second start adopts it', async (t) => {
  const { mlflow } = t.context;
  const pidFile = path.join(mlflow.stateDir, 'mlflow.pid');
  t.is(JSON.parse(fs.readFileSync(pidFile, 'utf8')).pid, mlflow.server.pid); // pid + start time + boot id
  t.regex(mlflow.server.version, /^3\.\d+\.\d+/);
  t.true(mlflow.server.started);
  const again = await startMlflowServer({ stateDir: mlflow.stateDir, port: mlflow.port });
  t.false(again.started);
  t.is(again.pid, mlflow.server.pid);
  t.is(again.url, mlflow.url);
});

test.serial('a port held by another process is refused before anything starts', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => blocker.close());
  const port = (blocker.address() as net.AddressInfo).port;
  const stateDir = tempDir(t, 'csr-mlflow-busy-');
  await t.throwsAsync(startMlflowServer({ stateDir, port }), { message: new RegExp(`port ${port} .* already in use`) });
  t.false(fs.existsSync(path.join(stateDir, 'mlflow.pid')));
});

test.serial('a venv without MLflow is a clear error', async (t) => {
  const stateDir = tempDir(t, 'csr-mlflow-novenv-');
  await t.throwsAsync(startMlflowServer({ stateDir, port: await freePort(), venv: stateDir }), {
    message: /MLflow is not installed at .*bin\/mlflow; run `npm run bootstrap`/,
  });
});

test.serial('a server that dies while starting is reported with the end of its log', async (t) => {
  const venv = tempDir(t, 'csr-mlflow-broken-');
  fs.mkdirSync(path.join(venv, 'bin'));
  // A real executable in the place of mlflow that fails the way a broken install does.
  fs.writeFileSync(
    path.join(venv, 'bin', 'mlflow'),
    '#!/bin/sh\necho "ModuleNotFoundError: No module named mlflow" >&2\nexit 1\n',
    {
      mode: 0o755,
    },
  );
  const stateDir = path.join(venv, 'state');
  const error = await t.throwsAsync(startMlflowServer({ stateDir, port: await freePort(), venv }));
  t.regex(error?.message ?? '', /MLflow server at http:\/\/127\.0\.0\.1:\d+ exited while starting/);
  t.regex(error?.message ?? '', /--- last lines of .*mlflow\.log ---\nModuleNotFoundError: No module named mlflow/);
  t.false(fs.existsSync(path.join(stateDir, 'mlflow.pid')), 'no stale pid file is left behind');
});

test.serial('stopping and restarting the server keeps runs, metrics and artifacts', async (t) => {
  const { mlflow } = t.context;
  const client = mlflow.client();
  const { experimentId } = await client.getOrCreateExperiment('restart');
  const { runId } = (await client.createRun({ experimentId, name: 'before-restart' })).info;
  await client.logBatch(runId, { metrics: [{ key: 'loss', value: 0.5, step: 3 }], params: { seed: 1 } });
  await client.uploadArtifact(runId, 'kept.txt', 'still here');
  const pid = mlflow.server.pid;

  await mlflow.stop();
  t.false(groupAlive(pid), 'every process of the group has exited');
  t.true(await portFree(mlflow.port), 'the port is released');
  t.false(fs.existsSync(path.join(mlflow.stateDir, 'mlflow.pid')));
  await mlflow.start();

  const run = await client.getRun(runId);
  t.is(run.info.runName, 'before-restart');
  t.is(run.data.metrics.loss?.value, 0.5);
  t.is(run.data.params.seed, '1');
  t.is((await client.downloadArtifact(runId, 'kept.txt')).toString(), 'still here');
  t.is((await client.getOrCreateExperiment('restart')).experimentId, experimentId);
});

test.serial(
  'during an outage the resilient tracker warns and buffers, and flush() delivers once MLflow is back',
  async (t) => {
    const { mlflow } = t.context;
    const spoolDir = tempDir(t, 'csr-spool-');
    const warnings: string[] = [];
    const parent: RunSpec = { experimentName: 'outage', idempotencyKey: 'wf-outage', name: 'csr' };
    const tracker = new ResilientTracker({
      client: mlflow.client(),
      spoolDir,
      warn: (message) => warnings.push(message),
      retryIntervalMs: 600_000,
    });
    t.teardown(() => tracker.close());
    const parentRunId = await tracker.ensureRun(parent);
    t.truthy(parentRunId, 'the run is created at once while MLflow is up');

    await mlflow.stop();
    const loss = Array.from({ length: 1500 }, (_, step) => ({ key: 'loss', value: step / 1500, step }));
    await tracker.logBatch(parentRunId!, { metrics: loss, params: { lr: 0.001 } });
    // A child run first named during the outage: created, nested, and written to once MLflow is back.
    const child: RunSpec = {
      experimentName: 'outage',
      idempotencyKey: 'wf-outage/iter-1',
      name: 'iteration 1',
      parent,
    };
    t.is(await tracker.ensureRun(child), undefined);
    await tracker.setTag(child, 'csr.phase', 'dpo');
    await tracker.setTerminated(child, 'FINISHED', 1_700_000_000_000);

    t.is(tracker.pending, 4);
    t.is(warnings.length, 4);
    t.regex(
      warnings[0] ?? '',
      /MLflow write buffered: log-batch to run \w+ \(1500 metrics, 1 params, 0 tags\), because .*unreachable/,
    );
    t.regex(warnings[0] ?? '', /ECONNREFUSED/);
    t.regex(warnings[0] ?? '', /spooled to .*pending/);
    t.regex(warnings[1] ?? '', /creation of run "iteration 1" \(key wf-outage\/iter-1 in experiment "outage"\)/);
    t.is(fs.readdirSync(path.join(spoolDir, 'pending')).filter((f) => f.endsWith('.json')).length, 4);
    t.deepEqual(await tracker.flush(), { delivered: 0, pending: 4, rejected: 0 });

    await mlflow.start();
    t.deepEqual(await tracker.flush(), { delivered: 4, pending: 0, rejected: 0 });
    t.is(tracker.pending, 0);
    t.deepEqual(fs.readdirSync(path.join(spoolDir, 'pending')), []);

    const client = mlflow.client();
    t.is((await client.getMetricHistory(parentRunId!, 'loss')).length, 1500);
    t.is((await client.getRun(parentRunId!)).data.params.lr, '0.001');
    const { experimentId } = await client.getOrCreateExperiment('outage');
    const children = await client.findRunsByTags([experimentId], { [PARENT_RUN_TAG]: parentRunId! });
    t.is(children.length, 1);
    t.is(children[0]?.info.runName, 'iteration 1');
    t.is(children[0]?.data.tags['csr.phase'], 'dpo');
    t.is(children[0]?.info.status, 'FINISHED');
    t.is(children[0]?.info.endTime, 1_700_000_000_000);
  },
);

test.serial(
  'writes spooled by a process that exited are delivered in the background by the next tracker',
  async (t) => {
    const { mlflow } = t.context;
    const spoolDir = tempDir(t, 'csr-spool-');
    const warnings: string[] = [];
    const warn = (message: string) => warnings.push(message);
    const run: RunSpec = { experimentName: 'exit', idempotencyKey: 'wf-exit', name: 'csr' };
    const localFile = path.join(spoolDir, 'report.json');
    fs.writeFileSync(localFile, '{"accuracy": 0.5}');

    const unreachable = new MlflowClient({
      trackingUri: `http://127.0.0.1:${await freePort()}`,
      retry: { attempts: 1 },
    });
    const dying = new ResilientTracker({ client: unreachable, spoolDir: path.join(spoolDir, 'spool'), warn });
    await dying.logBatch(run, { metrics: [{ key: 'acc', value: 0.5, step: 1 }] });
    await dying.logArtifact(run, localFile, 'evaluation/report.json');
    t.is(dying.pending, 2);
    dying.close();
    // The step deletes its files; the spool kept its own copy of the artifact.
    fs.rmSync(localFile);

    const next = new ResilientTracker({ client: mlflow.client(), spoolDir: path.join(spoolDir, 'spool'), warn });
    t.teardown(() => next.close());
    t.regex(warnings.at(-1) ?? '', /2 MLflow write\(s\) left in .* by an earlier process; delivering them/);
    const deadline = Date.now() + 30_000;
    while (next.pending > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    t.is(next.pending, 0, 'delivered without anyone calling flush()');

    const client = mlflow.client();
    const { experimentId } = await client.getOrCreateExperiment('exit');
    const [created, ...others] = await client.findRunsByTags([experimentId], { [IDEMPOTENCY_TAG]: 'wf-exit' });
    t.is(others.length, 0);
    t.is(created?.data.metrics.acc?.value, 0.5);
    t.is(
      (await client.downloadArtifact(created!.info.runId, 'evaluation/report.json')).toString(),
      '{"accuracy": 0.5}',
    );
  },
);
