/**
 * Every bound and cross-field rule the issue names is in the schema, and the Python steps read the
 * same limits: `compute/csr_compute/config_bounds.json` must be what the schema exports today.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, parseConfig } from '../src/config';
import { configBounds, configBoundsJson } from '../src/config/bounds';

const repo = path.resolve(__dirname, '..');
const base = { name: 'x', iterations: 1, model: { source: 'toyworld' }, clip: { source: 'toyworld' } };

test('config_bounds.json is the schema export (regenerate: npx tsx scripts/export-config-bounds.ts)', (t) => {
  t.is(fs.readFileSync(path.join(repo, 'compute', 'csr_compute', 'config_bounds.json'), 'utf8'), configBoundsJson());
});

test('the export carries exclusive and upper bounds, not only minimums', (t) => {
  const bounds = configBounds();
  t.deepEqual(bounds['dpo.beta'], { type: 'number', exclusiveMinimum: 0 });
  t.deepEqual(bounds['dpo.warmup_ratio'], { type: 'number', minimum: 0, exclusiveMaximum: 1 });
  t.deepEqual(bounds['seed'], { type: 'integer', minimum: 0, maximum: 2 ** 32 - 101 });
  t.deepEqual(bounds['workers.gpu_shards'], { type: 'integer', minimum: 1, maximum: 1024 });
});

/** [what, config patch, the one expected line]. */
const BAD: [string, Record<string, unknown>, string][] = [
  ['0 s timeout', { activities: { start_to_close: '0s' } }, 'activities.start_to_close: expected duration > 0 like 30s, 5m, 2h, got "0s"'],
  ['0 s retry interval', { activities: { retry: { initial_interval: '0ms' } } }, 'activities.retry.initial_interval: expected duration > 0 like 30s, 5m, 2h, got "0ms"'],
  ['max retry interval below initial', { activities: { retry: { initial_interval: '10m', maximum_interval: '1m' } } }, 'activities.retry.maximum_interval: expected a duration >= initial_interval (10m), got "1m"'],
  ['heartbeat timer not under its timeout', { activities: { heartbeat_timeout: '10s', heartbeat_every: '10s' } }, 'activities.heartbeat_every: expected a duration < heartbeat_timeout (10s), got "10s"'],
  ['absurd gpu_shards', { workers: { gpu_shards: 1_000_000 } }, 'workers.gpu_shards: expected integer 1..1024, got 1000000'],
  ['seed 2^32', { seed: 2 ** 32 }, 'seed: expected integer 0..4294967195, got 4294967296'],
  ['dpo.beta 0', { dpo: { beta: 0 } }, 'dpo.beta: expected number > 0, got 0'],
  ['dpo.epochs 0', { dpo: { epochs: 0 } }, 'dpo.epochs: expected number > 0, got 0'],
  ['dpo.max_steps 0', { dpo: { max_steps: 0 } }, 'dpo.max_steps: expected -1 (run the epochs) or a positive step count, got 0'],
  ['warmup_ratio 1', { dpo: { warmup_ratio: 1 } }, 'dpo.warmup_ratio: expected number >= 0 and < 1, got 1'],
  ['keep_top + keep_bottom > num_beams', { generate: { num_beams: 2, keep_top: 1, keep_bottom: 2 } }, 'generate.keep_bottom: expected keep_top + keep_bottom <= num_beams (2), got 2'],
  ['judge URL not http(s)', { evaluate: { judge: { url: 'file:///etc/passwd', model: 'm' } } }, 'evaluate.judge.url: expected an http(s) URL, got "file:///etc/passwd"'],
  ['judge key not a variable name', { evaluate: { judge: { url: 'https://j', model: 'm', api_key_env: 'A B' } } }, 'evaluate.judge.api_key_env: expected an environment variable name, got "A B"'],
  ['benchmark name with a path', { evaluate: { benchmarks: [{ name: '../../x' }] } }, 'evaluate.benchmarks.0.name: expected benchmark name of letters, digits, - and _, got "../../x"'],
  ['infinity', { reward: { alpha: Number.POSITIVE_INFINITY } }, 'reward.alpha: expected number 0..1, got infinity'],
];

for (const [what, patch, line] of BAD) {
  test(`refused with one line: ${what}`, (t) => {
    const error = t.throws(() => parseConfig({ ...base, ...patch }), { instanceOf: ConfigError });
    t.deepEqual(error.problems, [line]);
  });
}
