/**
 * A config that enters through Temporal (UI, `temporal workflow start`, a schedule) is validated by the
 * run workflow with the same schema and message as the CLI, and fails at once, for good; a `setParams`
 * update is checked the same way and refused to its sender. Real dev server and the real workflow code; no activity worker is
 * needed, since a refused input must fail before the first activity.
 */
import anyTest, { type TestFn } from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { parse as parseYaml } from 'yaml';
import { parseAssignments, setParamsCommand } from '../app/cli/set-params-command';
import { runStatusQuery, setParamsUpdate } from '../workflows/messages';
import type { CsrRunInput } from '../src/shared/run-types';
import { createTestEnv, repoRoot, tempDir } from './helpers/temporal-harness';

interface Context {
  env: TestWorkflowEnvironment;
  bundle: WorkflowBundleWithSourceMap;
}
const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const [env, bundle] = await Promise.all([
    createTestEnv('ERROR'),
    bundleWorkflowCode({ workflowsPath: require.resolve('../workflows') }),
  ]);
  t.context = { env, bundle };
});

test.after.always(async (t) => {
  await t.context.env?.teardown();
});

const BAD_CONFIG = [
  'name: bad',
  'iterations: 1',
  'seed: 4294967296',
  'model: { source: toyworld }',
  'clip: { source: toyworld }',
  'dpo: { beta: 0, warmup_ratio: 1 }',
  'generate: { num_beams: 2, keep_top: 1, keep_bottom: 2 }',
  'activities: { start_to_close: 0s, retry: { initial_interval: 10m, maximum_interval: 1m } }',
  'evaluate: { judge: { url: "file:///etc/passwd", model: m } }',
  '',
].join('\n');

function input(config: unknown, configFile: string): CsrRunInput {
  return { config: config as CsrRunInput['config'], configHash: 'x', runKey: 'bad-run', configFile, nextIteration: 0, history: [] };
}

async function withWorker<T>(t: { context: Context }, taskQueue: string, fn: () => Promise<T>): Promise<T> {
  const worker = await Worker.create({ connection: t.context.env.nativeConnection, taskQueue, workflowBundle: t.context.bundle });
  return worker.runUntil(fn());
}

test('a bad config started directly through Temporal fails at once with the message the CLI gives', async (t) => {
  const dir = tempDir('csr-wf-input-');
  const file = path.join(dir, 'bad.yaml');
  fs.writeFileSync(file, BAD_CONFIG);
  let cli = '';
  let exitCode = 0;
  try {
    execFileSync(process.execPath, [path.join(repoRoot, 'bin', 'csr.js'), 'run', '--config', file], { encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    const failed = error as { status: number; stderr: string };
    exitCode = failed.status;
    cli = failed.stderr.trim();
  }
  t.is(exitCode, 2);

  const handle = await t.context.env.client.workflow.start('csrRun', {
    taskQueue: 'wf-input-1',
    workflowId: 'bad-config-run',
    args: [input(parseYaml(BAD_CONFIG), file)],
  });
  const error = await withWorker(t, 'wf-input-1', () => t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError }));
  const cause = error?.cause;
  t.true(cause instanceof ApplicationFailure, String(cause));
  t.is((cause as ApplicationFailure).type, 'ConfigError');
  t.true((cause as ApplicationFailure).nonRetryable);
  t.is((cause as ApplicationFailure).message, cli);
  for (const field of ['seed', 'dpo.beta', 'dpo.warmup_ratio', 'generate.keep_bottom', 'activities.start_to_close', 'activities.retry.maximum_interval', 'evaluate.judge.url']) {
    t.regex(cli, new RegExp(`\\n  ${field.replace(/\./g, '\\.')}: expected`), field);
  }
  // Failed in its first workflow task: no activity was ever scheduled.
  const history = await handle.fetchHistory();
  t.false(history.events?.some((event) => event.activityTaskScheduledEventAttributes) ?? true);
});

test('a run key that would leave the artifact root is refused', async (t) => {
  const config = parseYaml(BAD_CONFIG.replace(/^(seed|dpo|generate|activities|evaluate):.*$/gm, ''));
  const handle = await t.context.env.client.workflow.start('csrRun', {
    taskQueue: 'wf-input-2',
    workflowId: 'escaping-run',
    args: [{ ...input(config, 'good.yaml'), runKey: '../../x' }],
  });
  const error = await withWorker(t, 'wf-input-2', () => t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError }));
  t.regex(error?.cause?.message ?? '', /^invalid run key "\.\.\/\.\.\/x": expected letters, digits/);
});

test('setParams: a patch that breaks the config is refused to its sender and changes nothing; a good one is in force', async (t) => {
  const config = parseYaml(BAD_CONFIG.replace(/^(seed|dpo|generate|activities|evaluate):.*$/gm, ''));
  const handle = await t.context.env.client.workflow.start('csrRun', {
    taskQueue: 'wf-input-3',
    workflowId: 'set-params-run',
    args: [input(config, 'good.yaml')],
  });
  await withWorker(t, 'wf-input-3', async () => {
    // The run waits on its first activity (no activity worker here), so the updates find it running.
    const refused = await t.throwsAsync(handle.executeUpdate(setParamsUpdate, { args: [{ dpo: { beta: 0 }, seed: 3 } as never] }), {
      instanceOf: WorkflowUpdateFailedError,
    });
    const failure = refused?.cause as ApplicationFailure;
    t.is(failure.type, 'ConfigError');
    t.regex(failure.message, /^setParams refused: seed: cannot change while a run goes on/);
    const good = await handle.executeUpdate(setParamsUpdate, { args: [{ iterations: 2, dpo: { beta: 0.25 } }] });
    t.is(good.iterations, 2);
    // One field patched, the rest of the section as the config has it.
    t.is(good.dpo?.beta, 0.25);
    t.is(good.dpo?.learning_rate, 1e-7, "dpo.learning_rate: the config's (here its default)");
    const refusedBeta = await t.throwsAsync(handle.executeUpdate(setParamsUpdate, { args: [{ dpo: { beta: 0 } }] }));
    t.regex((refusedBeta?.cause as ApplicationFailure).message, /dpo\.beta: expected number > 0, got 0/);
    const status = await handle.query(runStatusQuery);
    t.is(status.iterations, 2, 'the refused patch left the accepted one in force');
    // `csr set` sends the same update: 0 when accepted, 2 (a bad input) when refused.
    process.env.TEMPORAL_ADDRESS = t.context.env.connection.options.address;
    t.is(await setParamsCommand('set-params-run', ['curate.sample_size=7']), 0);
    t.is(await setParamsCommand('set-params-run', ['dpo.beta=-1']), 2);
    t.is(await setParamsCommand('set-params-run', ['dpo.beta']), 2);
    const now = await handle.executeUpdate(setParamsUpdate, { args: [{}] });
    t.deepEqual([now.iterations, now.dpo?.beta, now.curate?.sample_size], [2, 0.25, 7]);
    // Only accepted updates are in the history (three of six): a replay of it gives the same overrides.
    const history = await handle.fetchHistory();
    t.is(history.events?.filter((event) => event.workflowExecutionUpdateAcceptedEventAttributes).length, 3);
    await handle.terminate('test done');
  });
});

test('csr set reads iterations=N and section.field=value, each value as YAML, and refuses anything else', (t) => {
  t.deepEqual(parseAssignments(['iterations=5', 'dpo.beta=0.2', 'dpo.loss=nll_only', 'generate.stop=[".", "!"]']), {
    iterations: 5,
    dpo: { beta: 0.2, loss: 'nll_only' },
    generate: { stop: ['.', '!'] },
  } as never);
  t.throws(() => parseAssignments(['dpo.beta']), { message: /"dpo\.beta": expected iterations=N or section\.field=value/ });
  t.throws(() => parseAssignments(['dpo.lora.r=8']), { instanceOf: TypeError });
});

test('a sweep with a bad cell config fails before its first child or activity', async (t) => {
  const handle = await t.context.env.client.workflow.start('csrSweep', {
    taskQueue: 'wf-input-4',
    workflowId: 'bad-sweep',
    args: [{ sweepKey: 'bad-sweep', experimentName: 'bad', runs: [{ cell: 0, seed: 0, input: input(parseYaml(BAD_CONFIG), 'sweep.yaml') }] } as never],
  });
  const error = await withWorker(t, 'wf-input-4', () => t.throwsAsync(handle.result(), { instanceOf: WorkflowFailedError }));
  t.is((error?.cause as ApplicationFailure).type, 'ConfigError');
  t.regex(error?.cause?.message ?? '', /^invalid config sweep\.yaml: \d+ problems\n {2}/);
  const history = await handle.fetchHistory();
  t.false(history.events?.some((event) => event.activityTaskScheduledEventAttributes || event.startChildWorkflowExecutionInitiatedEventAttributes) ?? true);
});
