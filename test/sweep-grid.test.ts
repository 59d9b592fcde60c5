/**
 * `csr sweep`'s grid: parsing `--grid KEY=V1,V2`, expanding cells, validating every cell through the
 * config schema (a bad key or value is one line naming key, value and what was expected), planning
 * run keys and the shared iteration 0, and the CLI's exit code 2 before anything starts.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../src/config';
import { GridError, cellConfigs, expandGrid, parseGrid, parseGridOption, withValue } from '../app/cli/sweep/grid';
import { planSweep } from '../app/cli/sweep/plan';

const repo = path.resolve(__dirname, '..');
const tiny = path.join(repo, 'test', 'fixtures', 'tiny-toy.yaml');

function gridProblems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof GridError) return error.problems;
    throw error;
  }
  throw new Error('expected a GridError');
}

test('values are YAML scalars: numbers, words, booleans, null', (t) => {
  t.deepEqual(parseGridOption('reward.alpha=0,0.5,0.9,1'), { key: 'reward.alpha', values: [0, 0.5, 0.9, 1] });
  t.deepEqual(parseGridOption('curate.path_norm=with_root,sentences').values, ['with_root', 'sentences']);
  t.deepEqual(parseGridOption('curate.drop_order_only=true,false').values, [true, false]);
  t.deepEqual(parseGridOption('dpo.rpo_alpha=null,1.0').values, [null, 1]);
  t.deepEqual(parseGridOption('dpo.learning_rate=1e-4, 1e-3').values, [1e-4, 1e-3]);
});

test('malformed, reserved, repeated and overlapping grid keys are refused, each in one line', (t) => {
  t.regex(gridProblems(() => parseGridOption('reward.alpha'))[0] as string, /expected KEY=V1,V2/);
  t.regex(gridProblems(() => parseGridOption('reward.alpha=0,,1'))[0] as string, /^--grid reward\.alpha: expected one or more/);
  t.regex(gridProblems(() => parseGridOption('seed=0,1'))[0] as string, /--seeds/);
  t.regex(gridProblems(() => parseGridOption('name=a,b'))[0] as string, /experiment/);
  t.regex(gridProblems(() => parseGridOption('reward.alpha=0,0'))[0] as string, /twice/);
  t.regex(gridProblems(() => parseGridOption('reward.alpha=[0,1]'))[0] as string, /scalar/);
  t.regex(gridProblems(() => parseGrid(['reward.alpha=0', 'reward.alpha=1']))[0] as string, /given twice/);
  t.regex(gridProblems(() => parseGrid(['reward=0', 'reward.alpha=1']))[0] as string, /overlaps/);
  t.regex(gridProblems(() => parseGrid([]))[0] as string, /at least one/);
});

test('cells are the Cartesian product, first axis slowest', (t) => {
  const cells = expandGrid(parseGrid(['reward.alpha=0,1', 'curate.path_norm=with_root,sentences']));
  t.deepEqual(
    cells.map((cell) => cell.params),
    [
      { 'reward.alpha': 0, 'curate.path_norm': 'with_root' },
      { 'reward.alpha': 0, 'curate.path_norm': 'sentences' },
      { 'reward.alpha': 1, 'curate.path_norm': 'with_root' },
      { 'reward.alpha': 1, 'curate.path_norm': 'sentences' },
    ],
  );
  t.deepEqual(
    cells.map((cell) => cell.index),
    [0, 1, 2, 3],
  );
});

test('a value lands at its dotted key, creating missing sections, without touching the original', (t) => {
  const raw = { name: 'x', reward: { alpha: 0.9 } };
  t.deepEqual(withValue(raw, 'curate.min_gap', 0.1), { name: 'x', reward: { alpha: 0.9 }, curate: { min_gap: 0.1 } });
  t.deepEqual(withValue(raw, 'reward.alpha', 0), { name: 'x', reward: { alpha: 0 } });
  t.is(raw.reward.alpha, 0.9);
  t.regex(gridProblems(() => withValue(raw, 'name.first', 1))[0] as string, /not a section/);
});

test('every cell is validated by the schema: a bad value names key, value and what was expected', (t) => {
  const base = loadConfig(tiny);
  const raw = { name: 'x', iterations: 1, model: { source: 'toyworld' }, clip: { source: 'toyworld' } };
  const configs = cellConfigs(raw, expandGrid(parseGrid(['reward.alpha=0,1'])), base, 'x.yaml');
  t.deepEqual(
    configs.map((config) => config.reward.alpha),
    [0, 1],
  );
  t.deepEqual(gridProblems(() => cellConfigs(raw, expandGrid(parseGrid(['reward.alpha=0,2'])), base, 'x.yaml')), [
    '--grid reward.alpha: expected number 0..1, got 2',
  ]);
  const [word, ...others] = gridProblems(() => cellConfigs(raw, expandGrid(parseGrid(['reward.calibration=rank,ranked'])), base, 'x.yaml'));
  t.regex(word as string, /^--grid reward\.calibration: expected one of rank, score\b.*, got "ranked"$/);
  t.deepEqual(others, []);
  const [unknown] = gridProblems(() => cellConfigs(raw, expandGrid(parseGrid(['reward.alpah=0'])), base, 'x.yaml'));
  t.regex(unknown as string, /^--grid reward\.alpah=0: unknown config key \(expected a field of reward: .*alpha.*\); did you mean reward\.alpha\?$/);
  // A cell-dependent check (num_beam_groups must divide num_token_beams: 3) fails only in its cell, and says so once.
  t.deepEqual(gridProblems(() => cellConfigs({ ...raw, generate: { num_token_beams: 3, num_beam_groups: 3 } }, expandGrid(parseGrid(['generate.num_beam_groups=1,2'])), base, 'x.yaml')), [
    '--grid generate.num_beam_groups: expected a divisor of num_token_beams (3), got 2',
  ]);
});

test('a plan: one run per cell and seed, run keys from the sweep key, seeds from the config seed, one shared iteration 0', (t) => {
  const plan = planSweep({ config: tiny, grid: ['reward.alpha=0,1', 'dpo.beta=0.1,0.5'], seeds: 2, now: new Date('2025-01-02T03:04:05Z') });
  t.regex(plan.sweepKey, /^tiny-toy-sweep-[0-9a-f]{8}-20250102-030405$/);
  t.is(plan.experimentName, 'tiny-toy');
  t.deepEqual(plan.seeds, [0, 1]);
  t.is(plan.cells.length, 4);
  t.is(plan.runs.length, 8);
  t.deepEqual(
    plan.runs.map((run) => run.input.runKey),
    plan.runs.map((run) => `${plan.sweepKey}-c${run.cell}-s${run.seed}`),
  );
  for (const run of plan.runs) {
    const cell = plan.cells[run.cell]!;
    t.is(run.input.config.reward.alpha, cell.params['reward.alpha'] as number);
    t.is(run.input.config.dpo.beta, cell.params['dpo.beta'] as number);
    t.is(run.input.config.seed, run.seed);
    t.is(run.input.sweep?.key, plan.sweepKey);
  }
  t.is(new Set(plan.runs.map((run) => run.input.configHash)).size, 8, 'every run has its own config hash');
  // Neither alpha, beta nor the loop seed changes what iteration 0 evaluates: it is computed once.
  t.is(plan.baselines.length, 1);
  t.true(plan.runs.every((run) => run.input.iteration0Key === plan.baselines[0]?.key));
  t.is(plan.objective, 'toy_chair/CHAIR_I');
  t.is(plan.direction, 'minimize');
  // The sweep key is a function of the config, grid and seeds (plus the time): another grid, another key.
  const other = planSweep({ config: tiny, grid: ['reward.alpha=0,0.5'], seeds: 2, now: new Date('2025-01-02T03:04:05Z') });
  t.not(other.sweepKey, plan.sweepKey);
});

test('cells that evaluate differently at iteration 0 get their own shared baseline', (t) => {
  const byWorld = planSweep({ config: tiny, grid: ['toyworld.seed=0,1'], seeds: 2 });
  t.is(byWorld.baselines.length, 2);
  const byBatch = planSweep({ config: tiny, grid: ['evaluate.max_new_tokens=16,48'], seeds: 1 });
  t.is(byBatch.baselines.length, 2);
  t.not(byBatch.runs[0]?.input.iteration0Key, byBatch.runs[1]?.input.iteration0Key);
});

test('csr sweep with a bad grid value exits 2 with one line and no stack trace, before connecting anywhere', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-sweep-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Nothing listens here: reaching Temporal would fail with another message and exit code.
  const env = { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1', CSR_HOME: dir };
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(repo, 'bin', 'csr.js'), 'sweep', '--config', tiny, ...args], { env, encoding: 'utf8' });
  const bad = run('--grid', 'reward.alpha=0,1.5', '--seeds', '1');
  t.is(bad.status, 2, bad.stderr);
  t.is(bad.stderr.trim(), '--grid reward.alpha: expected number 0..1, got 1.5');
  t.is(bad.stdout, '');
  const unknown = run('--grid', 'rewards.alpha=0', '--seeds', '1');
  t.is(unknown.status, 2, unknown.stderr);
  t.regex(unknown.stderr.trim(), /^--grid rewards\.alpha=0: unknown config key/);
  t.notRegex(unknown.stderr, /\n\s+at /, 'no stack trace');
  const seeds = run('--grid', 'reward.alpha=0', '--seeds', '0');
  t.not(seeds.status, 0);
  t.regex(seeds.stderr, /--seeds: expected integer >= 1, got "0"/);
});
