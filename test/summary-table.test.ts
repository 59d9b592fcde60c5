import test from 'ava';
import { changeVsStart, summaryTable } from '../src/cli/follow';
import type { IterationSummary } from '../src/shared/run-types';

const iteration = (n: number, metrics: Record<string, number>): IterationSummary => ({
  iteration: n,
  model: `m${n}`,
  metrics,
  stats: {},
  steps: [],
});

test('the summary ends with the change of each headline metric against iteration 0', (t) => {
  const history = [
    iteration(0, { 'toy_chair_test/CHAIR_I': 25, 'toy_chair_test/recall': 90 }),
    iteration(1, { 'toy_chair_test/CHAIR_I': 20, 'toy_chair_test/recall': 91 }),
    iteration(2, { 'toy_chair_test/CHAIR_I': 15, 'toy_chair_test/recall': 81 }),
  ];
  const lines = summaryTable(history).split('\n');
  const last = lines[lines.length - 1] ?? '';
  t.regex(last, /^change %/);
  t.regex(last, /-40\.0/);
  t.regex(last, /-10\.0/);
  t.is(changeVsStart(history, 'toy_chair_test/CHAIR_I'), '-40.0');
  t.is(changeVsStart(history, 'missing/metric'), '-');
  t.false(summaryTable(history.slice(0, 1)).includes('change %'), 'no change row before there is a change');
});
