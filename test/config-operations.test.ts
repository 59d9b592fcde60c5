import test from 'ava';
import { ConfigError, parseConfig } from '../src/config';

const base = { name: 'x', iterations: 1, model: { source: 'toyworld' }, clip: { source: 'toyworld' } };

test('two benchmarks of one name are refused: they would write one folder', (t) => {
  const error = t.throws(
    () =>
      parseConfig({
        ...base,
        evaluate: { benchmarks: [{ name: 'toy_chair_dev' }, { name: 'toy_pope_dev' }, { name: 'toy_chair_dev' }] },
      }),
    { instanceOf: ConfigError },
  );
  t.deepEqual(error.problems, ['evaluate.benchmarks.2.name: expected a benchmark name not already listed, got "toy_chair_dev"']);
});

test('distinct benchmark names pass', (t) => {
  const config = parseConfig({ ...base, evaluate: { benchmarks: [{ name: 'toy_chair_dev' }, { name: 'toy_chair_test' }] } });
  t.is(config.evaluate.benchmarks.length, 2);
});

test('activities.stall_timeout defaults to 30 minutes and can be set', (t) => {
  t.is(parseConfig(base).activities.stall_timeout, '30m');
  t.is(parseConfig({ ...base, activities: { stall_timeout: '45s' } }).activities.stall_timeout, '45s');
});
