/**
 * `csr resume SWEEP` checks the sweep's recorded plan the way `csr resume RUN` checks a run's config:
 * every cell's config against today's schema, its hash against the one recorded at the start, and
 * the plan against the grid. A plan that fails is refused with one line per problem (exit 2).
 */
import test from 'ava';
import * as path from 'node:path';
import { ConfigError } from '../src/config';
import type { SweepInput } from '../src/shared/sweep-types';
import { planSweep } from '../app/cli/sweep/plan';
import { checkSweepInput } from '../app/cli/sweep/resume-check';
import { resumeSweep, startSweep } from '../app/cli/sweep/command';
import { createTestEnv } from './helpers/temporal-harness';

const tiny = path.resolve(__dirname, 'fixtures', 'tiny-toy.yaml');

/** A planned sweep as the workflow history records it (a JSON round trip, as Temporal's payloads do). */
function recorded(sweepKey?: string): SweepInput {
  const plan = planSweep({ config: tiny, grid: ['reward.alpha=0.5,0.9', 'dpo.epochs=1,2'], seeds: 2, now: new Date(0) });
  const input = JSON.parse(JSON.stringify(plan)) as SweepInput;
  if (!sweepKey) return input;
  const runs = input.runs.map((run) => ({ ...run, input: { ...run.input, runKey: `${sweepKey}-c${run.cell}-s${run.seed}` } }));
  return { ...input, sweepKey, runs };
}

function problems(input: SweepInput): string[] {
  const error = (() => {
    try {
      checkSweepInput(input, 'sweep-x');
    } catch (caught) {
      return caught;
    }
    return undefined;
  })();
  if (!(error instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(error)}`);
  return error.problems;
}

test('a recorded sweep as it was planned passes, with its configs parsed by today\'s schema', (t) => {
  const input = recorded();
  const checked = checkSweepInput(input, 'sweep-x');
  t.is(checked.runs.length, 8);
  t.deepEqual(
    checked.runs.map((run) => run.input.config.reward.alpha),
    input.runs.map((run) => run.input.config.reward.alpha),
  );
});

test("a cell's config changed after the start is refused, naming the cell, the key and the grid's value", (t) => {
  const input = recorded();
  const run = input.runs[3]!;
  run.input.config.reward.alpha = 0.7;
  const lines = problems(input);
  t.true(lines.some((line) => line.startsWith(`cell ${run.cell} seed ${run.seed}: config changed since the sweep started`)), lines.join('\n'));
  t.true(lines.some((line) => line.includes('reward.alpha is 0.7, the grid says')), lines.join('\n'));
  t.regex(lines[lines.length - 1]!, /start a new sweep instead: npx csr sweep --config test\/fixtures\/tiny-toy\.yaml/);
});

test("a config today's schema refuses is refused with the field's own line", (t) => {
  const input = recorded();
  (input.runs[0]!.input.config.dpo as unknown as Record<string, unknown>).epochs = -1;
  const lines = problems(input);
  t.true(lines.some((line) => /^cell 0 seed 0: .*dpo\.epochs/.test(line)), lines.join('\n'));
});

test('a plan that does not match its grid is refused: a run missing, cells not the grid, a run key changed', (t) => {
  const missing = recorded();
  const dropped = missing.runs.pop()!;
  t.true(problems(missing).includes(`cell ${dropped.cell} seed ${dropped.seed}: no run planned`));

  const cells = recorded();
  cells.grid[0]!.values.push(1);
  t.true(problems(cells).some((line) => line.startsWith('cells: 4 recorded, not the 6 of the grid')));

  const key = recorded();
  key.runs[1]!.input.runKey = 'someone-else';
  t.true(problems(key).some((line) => line.includes('run key someone-else, expected')));
});

test('resumeSweep refuses a sweep whose recorded plan fails the check and starts nothing; an intact one starts', async (t) => {
  const env = await createTestEnv();
  try {
    const { client } = env;
    // No worker: the sweeps stay open, which is all this needs (resumeSweep reads their start input).
    const tampered = recorded('tampered-sweep');
    tampered.runs[2]!.input.config.dpo.learning_rate = 0.5;
    await startSweep(client, tampered);
    const error = await t.throwsAsync(resumeSweep(client, 'tampered-sweep'), { instanceOf: ConfigError });
    t.regex(error?.message ?? '', /^sweep tampered-sweep: 2 problems\n {2}cell \d seed \d: config changed since the sweep started/);
    const started = [];
    for await (const execution of client.workflow.list({ query: "WorkflowId STARTS_WITH 'tampered-sweep-resume'" })) started.push(execution.workflowId);
    t.deepEqual(started, [], 'no resumed sweep was started');

    const intact = recorded('intact-sweep');
    await startSweep(client, intact);
    const resumed = await resumeSweep(client, 'intact-sweep');
    t.regex(resumed, /^intact-sweep-resume-/);
    for (const id of ['tampered-sweep', 'intact-sweep', resumed]) await client.workflow.getHandle(id).terminate('test done');
  } finally {
    await env.teardown();
  }
});
