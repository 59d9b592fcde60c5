/**
 * The embedded stack as a user meets it: `csr up` / `csr down` through the real CLI, with its own
 * CSR_HOME and free ports. Restarting keeps Temporal history and MLflow runs; `status` and `list`
 * work against the embedded stack and against an external TEMPORAL_ADDRESS; a config with three
 * mistakes is refused with exit code 2 and starts no workflow.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { MlflowClient } from '../src/mlflow';
import { freePort } from '../app/stack/free-port';
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
