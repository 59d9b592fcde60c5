/**
 * What a person sees of runs and sweeps on a real Temporal dev server, through stand-in workflows that
 * answer the CLI's queries: `list` (sweeps too, a run's first segment's start), `status` (true start,
 * every step's counts, a sweep id), `follow` (one start and one end line per step, Ctrl-C detaches,
 * the summary at the end) and `resume` of a completed run.
 */
import anyTest, { type TestFn } from 'ava';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createTestEnv, eventually } from './helpers/temporal-harness';
import { listCommand, statusCommand } from '../app/cli/status-command';
import { followRun } from '../app/cli/follow';
import { nothingToResume } from '../app/cli/resume-check';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { loadConfig } from '../src/config';
import { newRunInput, startRun } from '../app/cli/run-command';
import type { FakeRunInput } from './workflows/cli-view-workflows';
import * as activities from './workflows/cli-view-activities';
import { repoRoot } from './helpers/temporal-harness';

const test = anyTest as TestFn<{ env: TestWorkflowEnvironment; worker: Worker; running: Promise<void> }>;
const workflowsPath = require.resolve('./workflows/cli-view-workflows');
const taskQueue = 'cli-views';

test.before(async (t) => {
  t.context.env = await createTestEnv();
  // The commands connect as the CLI does, from the environment.
  process.env.TEMPORAL_ADDRESS = t.context.env.connection.options.address;
  t.context.worker = await Worker.create({ connection: t.context.env.nativeConnection, taskQueue, workflowsPath, activities });
  t.context.running = t.context.worker.run();
});
test.after.always(async (t) => {
  // The SDK's runtime stops its workers on SIGINT, which the detach test sends.
  if (t.context.worker?.getState() === 'RUNNING') t.context.worker.shutdown();
  await t.context.running?.catch(() => undefined);
  await t.context.env?.teardown();
});

const iteration0: FakeRunInput['history'][number] = {
  iteration: 0,
  model: 'm0',
  metrics: { 'b/CHAIR_I': 25, 'b/recall': 90 },
  stats: {},
  steps: [{ step: 'evaluate', label: 'b', state: 'done', itemsTotal: 300, itemsReused: 0, itemsComputed: 300, wallSeconds: 42 }],
};

/** Lines `fn` prints with console.log. */
async function printed(fn: () => Promise<unknown>): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => void lines.push(args.join(' '));
  try {
    await fn();
  } finally {
    console.log = log;
  }
  return lines.join('\n');
}

/** Start a stand-in run and wait for its second segment; the first segment's start time. */
async function startChained(env: TestWorkflowEnvironment, workflowId: string, stepMs = 0) {
  const handle = await env.client.workflow.start('csrRun', {
    taskQueue,
    workflowId,
    args: [{ segment: 0, firstSegmentMs: 1500, history: [iteration0], stepMs } satisfies FakeRunInput],
  });
  const firstStart = (await handle.describe()).startTime;
  await eventually('the run to continue as new', async () => {
    const d = await env.client.workflow.getHandle(workflowId).describe();
    return d.runId !== d.raw.workflowExecutionInfo?.firstRunId ? true : undefined;
  });
  const latestStart = (await env.client.workflow.getHandle(workflowId).describe()).startTime;
  return { firstStart, latestStart };
}

const utc = (date: Date) => date.toISOString().slice(0, 19).replace('T', ' ');

test.serial('list shows runs and sweeps, each run once with its first segment start; status shows it and every step', async (t) => {
  const { env } = t.context;
  const { firstStart, latestStart } = await startChained(env, 'view-run-1');
  t.true(latestStart.getTime() - firstStart.getTime() >= 1000, 'the segments started apart');
  const sweep = await env.client.workflow.start('csrSweep', { taskQueue, workflowId: 'view-sweep-1' });
  await eventually('the sweep to answer', async () => ((await sweep.query('sweepStatus').catch(() => undefined)) ? true : undefined));

  const list = await printed(() => listCommand({}));
  t.is(list.match(/view-run-1/g)?.length, 1, list);
  t.regex(list, new RegExp(`view-run-1\\s+running\\s+run\\s+running\\s+1/1\\s+${utc(firstStart)}`), list);
  const row = list.split('\n').find((l) => l.startsWith('view-run-1')) ?? '';
  t.false(row.includes(utc(latestStart)), `not the last segment's start: ${row}`);
  t.regex(list, /view-sweep-1\s+running\s+sweep/, list);

  const status = await printed(() => statusCommand('view-run-1', {}));
  t.regex(status, new RegExp(`started ${utc(firstStart)} UTC, running for \\d`), status);
  t.regex(status, /iter\s+step\s+state\s+total\s+reused\s+computed\s+time/, status);
  t.regex(status, /0\s+evaluate b\s+done\s+300\s+0\s+300\s+42s/, status);
  t.regex(status, /1\s+generate shard-0\s+running/, status);
  t.regex(status, /follow it: npx csr follow view-run-1/);
  const json = JSON.parse(await printed(() => statusCommand('view-run-1', { json: true })));
  t.is(json.startTime, firstStart.toISOString());
  t.is(json.objective, 'b/CHAIR_I');

  const sweepStatus = await printed(() => statusCommand('view-sweep-1', {}));
  t.regex(sweepStatus, /^sweep view-sweep-1: running/, sweepStatus);
  t.regex(sweepStatus, /cell\s+seed\s+state\s+items computed per iteration\s+run/, sweepStatus);
  t.regex(sweepStatus, /0\s+0\s+done\s+300 512 0\s+k-c0-s0/, sweepStatus);
  for (const id of ['view-run-1', 'view-sweep-1']) await env.client.workflow.getHandle(id).signal('finish');
});

test.serial('follow prints one start and one end line per step (reused ones too), then the summary; resume of the completed run has nothing to do', async (t) => {
  const { env } = t.context;
  await startChained(env, 'view-run-2');
  const lines: string[] = [];
  const following = followRun('view-run-2', { client: env.client, tty: false, pollMs: 200, log: (line) => lines.push(line) });
  await eventually('the start line', () => (lines.some((l) => /iter 1 generate shard-0  started$/.test(l)) ? true : undefined));
  t.is(await nothingToResume(env.client, 'view-run-2'), undefined, 'an open run is not completed');
  const handle = env.client.workflow.getHandle('view-run-2');
  await handle.signal('stepDone');
  await eventually('the end line', () => (lines.some((l) => /iter 1 merge  reused  1\/1 items/.test(l)) ? true : undefined));
  await handle.signal('finish');
  t.is(await following, 0);
  const text = lines.join('\n');
  t.is(lines.filter((l) => /generate shard-0  started/.test(l)).length, 1, text);
  t.regex(text, /iter 1 generate shard-0  done  64\/64 items \(0 reused, 64 computed\)  1m15s/);
  t.regex(text, /iter 0 evaluate b  done  300\/300 items/, 'steps of finished iterations too');
  t.regex(text, /run view-run-2: completed \(started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, ran \d+s\)/, 'its duration across segments');
  t.false(/merge merge|ETA -/.test(text), text);
  t.regex(text, /objective b\/CHAIR_I \(lower is better\), best at iteration 1/);
  t.regex(text, /\n1 best\s+20\s+80\s+57\s+1m15s/, text);
  t.regex(text, /\nchange %\s+-20\.0\s+-11\.1/);
  t.regex((await nothingToResume(env.client, 'view-run-2')) ?? '', /^run view-run-2 completed \(iterations 0-1 done\): nothing to resume/);
});

test.serial('a run started by the CLI carries a summary for the Temporal UI', async (t) => {
  const config = loadConfig(path.join(repoRoot, 'configs', 'toy.yaml'));
  const input = newRunInput(config, path.join(repoRoot, 'configs', 'toy.yaml'));
  const id = await startRun(input, `view-start-${Date.now()}`);
  const handle = t.context.env.client.workflow.getHandle(id);
  t.is(await (await handle.describe()).staticSummary(), 'CSR run of toy-csr: 3 iterations');
  await handle.terminate('test: no worker runs it');
});

/** Run the CLI in a pseudo-terminal (util-linux `script`), as a person at a terminal does; its output. */
function inTerminal(args: string[], columns = 200): Promise<string> {
  const command = `stty cols ${columns}; node ${path.join(repoRoot, 'bin', 'csr.js')} ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qefc', command, '/dev/null'], { env: { ...process.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${out}`))));
  });
}

test.serial('in a terminal, follow draws a live bar per running step, then a summary under 100 columns', async (t) => {
  const { env } = t.context;
  await startChained(env, 'view-run-tty', 4000);
  const handle = env.client.workflow.getHandle('view-run-tty');
  // generate shard-0 heartbeats 0..64 of 64 prompts for 4 s, then ends.
  const following = inTerminal(['follow', 'view-run-tty']);
  await new Promise((resolve) => setTimeout(resolve, 6000));
  await handle.signal('finish');
  const out = await following;
  // One bar, for the one running step, redrawn in place: its name on every frame, the ETA never unknown.
  t.regex(out, /iter 1 generate shard-0\s+\|[█░]+\| \d+\/64 prompts  12\.50 prompts\/s/, out);
  // eslint-disable-next-line no-control-regex
  const text = out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
  t.regex(text, /iter 1 generate shard-0  done  64\/64 items/, text);
  t.regex(text, /objective b\/CHAIR_I \(lower is better\), best at iteration 1/, text);
  const summary = text.slice(text.indexOf('objective b/CHAIR_I'));
  for (const line of summary.split('\n')) t.true(line.length < 100, `${line.length} columns: ${line}`);
  t.false(/ETA -|merge merge/.test(text), text);
});

test.serial('Ctrl-C detaches from a run: follow returns and says the run goes on', async (t) => {
  const { env } = t.context;
  await startChained(env, 'view-run-3');
  const lines: string[] = [];
  const following = followRun('view-run-3', { client: env.client, tty: false, pollMs: 200, log: (line) => lines.push(line) });
  await eventually('following', () => (lines.length > 0 ? true : undefined));
  process.emit('SIGINT');
  t.is(await following, 130);
  t.regex(lines.join('\n'), /detached from view-run-3; the run goes on\. Re-attach: npx csr follow view-run-3/);
  t.is((await env.client.workflow.getHandle('view-run-3').describe()).status.name, 'RUNNING');
  await env.client.workflow.getHandle('view-run-3').signal('finish');
});
