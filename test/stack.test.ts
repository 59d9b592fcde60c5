/**
 * The embedded stack as a user meets it: `csr up` / `csr down` through the real CLI, with its own
 * CSR_HOME and free ports. Restarting keeps Temporal history and MLflow runs; `status` and `list`
 * work against the embedded stack and against an external TEMPORAL_ADDRESS; a config with three
 * mistakes is refused with exit code 2 and starts no workflow; `up` returns once Temporal sees every
 * worker poll its queues, and one that does not in time is named with its log (exit 2, nothing stopped).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { MlflowClient } from '../src/mlflow';
import { freePort } from '../app/stack/free-port';
import { livePid, stopPidFile } from '../app/stack/process-group';
import { createTestEnv, repoRoot, tempDir } from './helpers/temporal-harness';
import { configHash } from '../app/cli/run-command';
import { loadConfig } from '../src/config';

const csr = (args: string[], env: NodeJS.ProcessEnv) =>
  spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'csr.js'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 180_000,
  });

async function stackEnv() {
  const home = tempDir('csr-stack-');
  return {
    CSR_HOME: home,
    CSR_TEMPORAL_PORT: String(await freePort()),
    CSR_TEMPORAL_UI_PORT: String(await freePort()),
    CSR_MLFLOW_PORT: String(await freePort()),
    TEMPORAL_ADDRESS: '',
    MLFLOW_TRACKING_URI: '',
  };
}

test.serial('stack restart keeps Temporal history and MLflow runs; status and list work on it', async (t) => {
  const env = await stackEnv();
  const up = csr(['up', '--no-workers'], env);
  t.is(up.status, 0, up.stdout + up.stderr);
  t.regex(up.stdout, /temporal\s+started/);
  t.regex(up.stdout, /mlflow\s+started/);
  const pidFiles = fs.readdirSync(path.join(env.CSR_HOME, 'run')).sort();
  t.deepEqual(pidFiles, ['mlflow.pid', 'temporal.pid']);
  t.true(fs.existsSync(path.join(env.CSR_HOME, 'logs', 'temporal.log')));

  try {
    // A run with no worker to pick it up stays RUNNING: enough to see that history survives.
    const config = loadConfig(path.join(repoRoot, 'configs', 'toy.yaml'));
    const address = `127.0.0.1:${env.CSR_TEMPORAL_PORT}`;
    let connection = await Connection.connect({ address });
    let client = new Client({ connection });
    const workflowId = `stack-test-${Date.now()}`;
    await client.workflow.start('csrRun', {
      taskQueue: 'csr-cpu',
      workflowId,
      args: [{ config, configHash: configHash(config), runKey: workflowId, nextIteration: 0, history: [] }],
    });
    await connection.close();
    const mlflowUrl = `http://127.0.0.1:${env.CSR_MLFLOW_PORT}`;
    const mlflow = new MlflowClient({ trackingUri: mlflowUrl });
    const experiment = await mlflow.getOrCreateExperiment('stack-test');
    const run = await mlflow.createRun({ experimentId: experiment.experimentId, name: 'survives-restart' });

    const down = csr(['down'], env);
    t.is(down.status, 0, down.stderr);
    t.regex(down.stdout, /temporal\s+stopped/);
    t.deepEqual(fs.readdirSync(path.join(env.CSR_HOME, 'run')), []);

    const again = csr(['up', '--no-workers'], env);
    t.is(again.status, 0, again.stderr);
    connection = await Connection.connect({ address });
    client = new Client({ connection });
    const description = await client.workflow.getHandle(workflowId).describe();
    t.is(description.status.name, 'RUNNING');
    await connection.close();
    const kept = await mlflow.getRun(run.info.runId);
    t.is(kept.info.runId, run.info.runId);

    const list = csr(['list', '--json'], env);
    t.is(list.status, 0, list.stderr);
    t.true((JSON.parse(list.stdout) as { id: string }[]).some((r) => r.id === workflowId));
    const status = csr(['status', workflowId, '--json'], env);
    t.is(status.status, 0, status.stderr);
    t.is(JSON.parse(status.stdout).workflowId, workflowId);
    const health = csr(['health', '--json'], env);
    const services = JSON.parse(health.stdout) as { name: string; healthy: boolean }[];
    t.true(services.find((s) => s.name === 'temporal')?.healthy);
    t.true(services.find((s) => s.name === 'mlflow')?.healthy);
  } finally {
    csr(['down'], env);
  }
});

test.serial('csr up returns once Temporal sees each worker poll its queues; past --worker-timeout it names the worker, exits 2 and stops nothing', async (t) => {
  const env = await stackEnv();
  const runDir = path.join(env.CSR_HOME, 'run');
  const workerPid = (name: string) => livePid(path.join(runDir, `worker-${name}.pid`));
  const { TaskQueueType } = temporal.api.enums.v1;
  // What each worker process of `up --gpu-workers 1` serves: the CPU worker runs workflows and light activities.
  const served: [string, string, temporal.api.enums.v1.TaskQueueType][] = [
    ['cpu', 'csr-cpu', TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW],
    ['cpu', 'csr-cpu', TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY],
    ['gpu-standins', 'csr-gpu', TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY],
  ];
  try {
    const up = csr(['up', '--gpu-workers', '1'], env);
    t.is(up.status, 0, up.stdout + up.stderr);
    const connection = await Connection.connect({ address: `127.0.0.1:${env.CSR_TEMPORAL_PORT}` });
    try {
      // At once, no waiting here: each worker process (identity `<worker>@<host>/<pid>`) polls each of its queues.
      for (const [worker, taskQueue, taskQueueType] of served) {
        const pid = workerPid(worker);
        const { pollers } = await connection.workflowService.describeTaskQueue({
          namespace: 'default',
          taskQueue: { name: taskQueue },
          taskQueueType,
        });
        const identities = (pollers ?? []).map((p) => p.identity ?? '');
        t.true(
          pid !== undefined && identities.some((id) => id.endsWith(`/${pid}`)),
          `${worker} (pid ${pid}) polls ${taskQueue} (type ${taskQueueType}); pollers: ${identities.join(', ')}`,
        );
      }
    } finally {
      await connection.close();
    }

    // Workers started with no time to come up: named with their logs, exit 2, left running; the next `up` adopts them.
    for (const worker of ['cpu', 'gpu-standins']) await stopPidFile(path.join(runDir, `worker-${worker}.pid`), 30_000);
    const late = csr(['up', '--gpu-workers', '1', '--worker-timeout', '0'], env);
    t.is(late.status, 2, late.stdout + late.stderr);
    t.regex(late.stderr, /worker cpu \(pid \d+\) is not polling csr-cpu \(workflow\), csr-cpu \(activity\) after 0 s; see \S+\/worker-cpu\.log/);
    t.regex(late.stderr, /worker gpu-standins \(pid \d+\) is not polling csr-gpu \(activity\) after 0 s; see \S+\/worker-gpu-standins\.log/);
    t.regex(late.stderr, /nothing was stopped/);
    t.truthy(workerPid('cpu'));
    t.truthy(workerPid('gpu-standins'));
    const again = csr(['up', '--gpu-workers', '1'], env);
    t.is(again.status, 0, again.stdout + again.stderr);
    t.regex(again.stdout, /worker\s+cpu already running/);
    t.regex(again.stdout, /worker\s+cpu polling csr-cpu \(workflow\), csr-cpu \(activity\)/);
    const health = csr(['health', '--json'], env);
    const services = JSON.parse(health.stdout) as { name: string; polling?: boolean }[];
    t.deepEqual(
      services.filter((s) => s.name.startsWith('worker-')).map((w) => [w.name, w.polling]).sort(),
      [
        ['worker-cpu', true],
        ['worker-gpu-standins', true],
      ],
    );
  } finally {
    csr(['down'], env);
  }
});

test.serial('status and list against an external TEMPORAL_ADDRESS; a config with three mistakes starts nothing', async (t) => {
  const testEnv = await createTestEnv();
  try {
    const address = testEnv.connection.options.address;
    const env = { ...(await stackEnv()), TEMPORAL_ADDRESS: address };
    const bad = path.join(tempDir(), 'bad.yaml');
    fs.writeFileSync(
      bad,
      'name: toy\niterations: 2\nmodel: {source: toyworld}\nclip: {source: toyworld}\n' +
        'generate: {num_beams: five}\nreward: {alpha: 1.5}\ndpo: {betta: 0.1}\n',
    );
    const refused = csr(['run', '--config', bad], env);
    t.is(refused.status, 2, refused.stdout + refused.stderr);
    t.regex(refused.stderr, /generate\.num_beams: expected integer >= 2, got "five"/);
    t.regex(refused.stderr, /reward\.alpha: expected number 0\.\.1, got 1\.5/);
    t.regex(refused.stderr, /dpo\.betta: unknown field/);
    const empty = csr(['list', '--json'], env);
    t.is(empty.status, 0, empty.stderr);
    t.deepEqual(JSON.parse(empty.stdout), []);

    const config = loadConfig(path.join(repoRoot, 'configs', 'toy.yaml'));
    await testEnv.client.workflow.start('csrRun', {
      taskQueue: 'csr-cpu',
      workflowId: 'external-run',
      args: [{ config, configHash: configHash(config), runKey: 'external-run', nextIteration: 0, history: [] }],
    });
    const list = csr(['list'], env);
    t.is(list.status, 0, list.stderr);
    t.regex(list.stdout, /external-run\s+running/);
    const status = csr(['status', 'external-run'], env);
    t.is(status.status, 0, status.stderr);
    t.regex(status.stdout, /run external-run/);
  } finally {
    await testEnv.teardown();
  }
});
