import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig, parseConfig } from '../src/config';

const repo = path.resolve(__dirname, '..');

test('every shipped config is valid', (t) => {
  for (const file of fs.readdirSync(path.join(repo, 'configs')).filter((f) => f.endsWith('.yaml'))) {
    const config = loadConfig(path.join(repo, 'configs', file));
    t.true(config.iterations >= 1, file);
  }
});

test('defaults are filled in from the schema', (t) => {
  const config = parseConfig({ name: 'x', iterations: 1, model: { source: 'toyworld' }, clip: { source: 'toyworld' } });
  t.is(config.generate.num_beams, 5);
  t.is(config.reward.alpha, 0.9);
  t.is(config.dpo.beta, 0.1);
  t.is(config.activities.retry.maximum_attempts, 5);
});

test('three mistakes are named in one message: path, value, what was expected', (t) => {
  const error = t.throws(
    () =>
      parseConfig({
        name: 'toy',
        iterations: 3,
        model: { source: 'toyworld' },
        clip: { source: 'toyworld' },
        generate: { num_beams: 'five' },
        reward: { alpha: 1.5 },
        dpo: { betta: 0.1 },
      }),
    { instanceOf: ConfigError },
  );
  t.deepEqual(error.problems, [
    'generate.num_beams: expected integer >= 2, got "five"',
    'reward.alpha: expected number 0..1, got 1.5',
    'dpo.betta: unknown field (got 0.1); check its spelling',
  ]);
  t.regex(error.message, /3 problems/);
});

test('cross-field rules name the field', (t) => {
  const error = t.throws(
    () =>
      parseConfig({
        name: 'toy',
        iterations: 1,
        model: { source: 'path' },
        clip: { source: 'toyworld' },
        generate: { num_token_beams: 5, num_beam_groups: 2 },
        prompts: { source: 'file' },
      }),
    { instanceOf: ConfigError },
  );
  t.true(error.problems.some((p) => p.startsWith('generate.num_beam_groups: expected a divisor of num_token_beams (5), got 2')), error.message);
  t.true(error.problems.some((p) => p.startsWith('prompts.file: expected a path when source is file')), error.message);
  t.true(error.problems.some((p) => p.startsWith('model.path') || p.startsWith('model')), error.message);
});

test('a YAML syntax error names the line', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-config-'));
  const file = path.join(dir, 'broken.yaml');
  fs.writeFileSync(file, 'name: x\niterations: [1\n');
  const error = t.throws(() => loadConfig(file), { instanceOf: ConfigError });
  t.regex(error.problems[0] ?? '', /not valid YAML at line/);
});

test("a benchmark's options: names and values checked, the entry's own fields refused as options", (t) => {
  const withOptions = (options: unknown) => ({
    name: 'x',
    iterations: 1,
    model: { source: 'toyworld' },
    clip: { source: 'toyworld' },
    evaluate: { benchmarks: [{ name: 'mme', split: 'test', options }] },
  });
  const config = parseConfig(withOptions({ parse: 'lmms_eval', passes: 3, strict: true }));
  t.deepEqual(config.evaluate.benchmarks[0]!.options, { parse: 'lmms_eval', passes: 3, strict: true });
  t.is(config.evaluate.benchmarks[0]!.split, 'test');
  const problems = (options: unknown) => t.throws(() => parseConfig(withOptions(options)), { instanceOf: ConfigError }).problems.join('\n');
  t.regex(problems({ limit: 5 }), /evaluate\.benchmarks\.0\.options\.limit: expected a benchmark-specific field/);
  t.regex(problems({ 'Bad Name': 1 }), /evaluate\.benchmarks\.0\.options\.Bad Name: expected an option name/);
  t.regex(problems({ parse: ['a'] }), /evaluate\.benchmarks\.0\.options\.parse: expected a string, number or true\/false/);
});
