import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { changeVsStart, endLine, progressText, stepName, summaryTable } from '../app/cli/follow';
import { clock, iterationWallTime } from '../app/cli/summary-table';
import type { IterationSummary, StepSummary } from '../src/shared/run-types';

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

/** A real 4-iteration toy history (iterations 0-2 from a recorded run's start input, 3 from its child's result). */
function recordedHistory(): IterationSummary[] {
  const recorded = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'histories', 'csr-run.json'), 'utf8'));
  const decode = (payload: { data: string }) => JSON.parse(Buffer.from(payload.data, 'base64').toString('utf8'));
  const input = decode(recorded.events[0].workflowExecutionStartedEventAttributes.input.payloads[0]);
  const child = recorded.events.find((e: Record<string, unknown>) => e.childWorkflowExecutionCompletedEventAttributes);
  return [...input.history, decode(child.childWorkflowExecutionCompletedEventAttributes.result.payloads[0])];
}

test('the toy summary fits in 100 columns: objective first with its direction, best iteration, counts as integers, wall time', (t) => {
  const history = recordedHistory();
  t.is(history.length, 4);
  const text = summaryTable(history, { objective: 'toy_chair_dev/CHAIR_I', direction: 'minimize' });
  const lines = text.split('\n');
  for (const line of lines) t.true(line.length < 100, `${line.length} columns: ${line}`);
  t.regex(lines[0] ?? '', /^objective toy_chair_dev\/CHAIR_I \(lower is better\), best at iteration 3; \d+ more with --wide$/);
  const names = lines.find((l) => l.startsWith('iteration')) ?? '';
  // The first metric column is the objective, marked with its direction.
  t.regex(names, /^iteration\s+CHAIR_I ↓\s/);
  t.regex(lines[1] ?? '', /^\s+toy_chair_dev\s/);
  // The test split's CHAIR_I and recall (what the README quotes) are in the default table.
  t.regex(lines[1] ?? '', /toy_chair_test/);
  t.regex(names, /recall.*CHAIR_I.*recall/);
  t.regex(names, /pairs\s+time$/);
  const row = (n: string) => lines.find((l) => l.startsWith(n)) ?? '';
  t.regex(row('3 '), /^3 best\s+19\.039\s/);
  t.regex(row('2 '), /^2 worse\s+27\.475/, 'an iteration worse than the start is flagged');
  t.regex(row('1 '), /\s212\s+2m04s$/, 'pair count as an integer, wall time of the iteration');
  t.notRegex(text, /\b(212|152|57)\.\d/, 'no count printed as a float');
  t.regex(row('0 '), /reused$/, 'iteration 0 reused from the sweep baseline');
  t.regex(lines[lines.length - 1] ?? '', /^change %\s+-25\.0\s/);
  t.false(text.includes('gt_better'), 'pair-quality columns only with --wide');
});

test('--wide adds every headline metric and the pair statistics, with what gt_* means', (t) => {
  const history = recordedHistory();
  const narrow = summaryTable(history, { objective: 'toy_chair_dev/CHAIR_I' });
  const wide = summaryTable(history, { objective: 'toy_chair_dev/CHAIR_I', wide: true });
  t.regex(wide, /gt_better: share of pairs whose chosen response the ground truth also prefers/);
  t.regex(wide, /toy_pope_test/);
  t.false(narrow.includes('toy_pope_test'));
  t.false(wide.includes('more with --wide'));
  t.true(Math.max(...wide.split('\n').map((l) => l.length)) > 100);
});

test('a maximized objective marks the highest iteration best and a lower one worse', (t) => {
  const history = [
    iteration(0, { 'pope/mean/accuracy': 80, 'pope/mean/f1': 70 }),
    iteration(1, { 'pope/mean/accuracy': 78, 'pope/mean/f1': 71 }),
    iteration(2, { 'pope/mean/accuracy': 85, 'pope/mean/f1': 72 }),
  ];
  const text = summaryTable(history, { objective: 'pope/mean/accuracy', direction: 'maximize' });
  t.regex(text, /higher is better\), best at iteration 2/);
  t.regex(text, /mean\/accuracy ↑/);
  t.regex(text, /\n1 worse\s+78\s/);
  t.regex(text, /\n2 best\s+85\s/);
});

test('progress text never prints an unknown ETA, a label equal to its step once, and a step ends at its total', (t) => {
  const base = { activityId: '1', step: 'generate', label: 'shard-0', attempt: 1, done: 12, total: 256 };
  t.is(progressText({ ...base, etaS: undefined }), '12/256 items');
  t.is(progressText({ ...base, etaS: null as unknown as number, rate: 0 }), '12/256 items');
  t.is(progressText({ ...base, etaS: 70, rate: 3.2 }), '12/256 items  3.20 items/s  ETA 1m10s');
  t.is(stepName('merge', 'merge'), 'merge');
  t.is(stepName('generate', 'shard-0'), 'generate shard-0');
  const skipped: StepSummary = { step: 'curate', label: 'pairs', state: 'skipped', itemsTotal: 256, itemsReused: 256, itemsComputed: 0 };
  t.is(endLine(1, skipped), 'iter 1 curate pairs  reused  256/256 items (256 reused, 0 computed)');
  const done: StepSummary = { step: 'dpo', label: 'train', state: 'done', itemsTotal: 75, itemsReused: 0, itemsComputed: 75, wallSeconds: 125 };
  t.is(endLine(2, done), 'iter 2 dpo train  done  75/75 items (0 reused, 75 computed)  2m05s');
});

test('wall time reads as clock time and comes from the first start to the last end of the steps', (t) => {
  t.is(clock(45), '45s');
  t.is(clock(125), '2m05s');
  t.is(clock(3720), '1h02m');
  t.is(clock(undefined), '-');
  const h: IterationSummary = {
    ...iteration(1, {}),
    steps: [
      { step: 'generate', state: 'done', startedAt: '2026-01-01T00:00:00Z', endedAt: '2026-01-01T00:01:00Z', wallSeconds: 60 },
      { step: 'reward', state: 'done', startedAt: '2026-01-01T00:01:00Z', endedAt: '2026-01-01T00:03:30Z', wallSeconds: 150 },
    ],
  };
  t.is(iterationWallTime(h), '3m30s');
});
