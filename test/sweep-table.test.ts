/**
 * The sweep's table on hand-computed numbers: mean and sample sd (n - 1) over seeds at each run's
 * last iteration, per-iteration means, the best cell, the CSV and the printed table.
 */
import test from 'ava';
import { bestCell, mean, sampleSd, summarizeSweep } from '../src/shared/sweep-table';
import { sweepCsv } from '../src/shared/sweep-csv';
import type { SweepCell, SweepRunState } from '../src/shared/sweep-types';
import { sweepTableText } from '../app/cli/sweep/output';

const cells: SweepCell[] = [
  { index: 0, params: { 'reward.alpha': 0 } },
  { index: 1, params: { 'reward.alpha': 0.9 } },
];

function run(cell: number, seed: number, chair: number[], state: SweepRunState['state'] = 'done'): SweepRunState {
  return {
    cell,
    seed,
    runKey: `k-c${cell}-s${seed}`,
    workflowId: `w/c${cell}-s${seed}`,
    state,
    metricsByIteration: chair.map((value, iteration) => ({ 'toy_chair/CHAIR_I': value, 'toy_chair/recall': 90 - iteration })),
  };
}

test('mean and sample sd: n - 1 in the denominator, 0 for a single seed', (t) => {
  t.is(mean([1, 2, 3, 4]), 2.5);
  t.true(Math.abs(sampleSd([1, 2, 3, 4]) - Math.sqrt(5 / 3)) < 1e-12); // squares 2.25+0.25+0.25+2.25 = 5, / 3
  t.is(sampleSd([7]), 0);
  t.is(sampleSd([2, 2, 2]), 0);
});

test('per cell and metric: mean +- sd over seeds at the last iteration, per-iteration means, only finished runs', (t) => {
  const runs = [
    run(0, 0, [24, 20, 18]),
    run(0, 1, [24, 22, 14]),
    run(0, 2, [24, 21, 10]),
    run(1, 0, [24, 23]), // stopped early (stop_when_worse): its last iteration counts
    run(1, 1, [24, 19, 16]),
    run(1, 2, [24, 25, 30], 'failed'), // a failed run is left out, and its seed with it
  ];
  const table = summarizeSweep(cells, runs);
  t.deepEqual(table.cells[0]?.params, { 'reward.alpha': 0 });
  t.deepEqual(table.cells[0]?.seeds, [0, 1, 2]);
  const chair0 = table.cells[0]!.metrics['toy_chair/CHAIR_I']!;
  t.is(chair0.mean, 14);
  t.is(chair0.sd, 4); // (18, 14, 10): squares 16+0+16 = 32, / 2 = 16
  t.is(chair0.n, 3);
  t.deepEqual(chair0.by_iteration, [24, 21, 14]);
  const chair1 = table.cells[1]!.metrics['toy_chair/CHAIR_I']!;
  t.deepEqual(table.cells[1]?.seeds, [0, 1]);
  t.is(chair1.mean, 19.5); // (23, 16)
  t.true(Math.abs(chair1.sd - Math.sqrt(24.5)) < 1e-12);
  t.is(chair1.n, 2);
  t.deepEqual(chair1.by_iteration, [24, 21, 16]); // iteration 2 has one seed
  t.deepEqual(Object.keys(table.cells[0]!.metrics), ['toy_chair/CHAIR_I', 'toy_chair/recall']);
  // The JSON shape `csr sweep --json` prints, key for key.
  t.deepEqual(Object.keys(table), ['cells']);
  t.deepEqual(Object.keys(table.cells[0]!), ['params', 'seeds', 'metrics']);
  t.deepEqual(Object.keys(chair0), ['mean', 'sd', 'n', 'by_iteration']);
});

test('a cell with no finished run has no metrics and no seeds', (t) => {
  const table = summarizeSweep(cells, [run(0, 0, [1, 2]), run(1, 0, [1, 2], 'failed')]);
  t.deepEqual(table.cells[1], { params: { 'reward.alpha': 0.9 }, seeds: [], metrics: {} });
});

test('the best cell follows the objective and its direction', (t) => {
  const table = summarizeSweep(cells, [run(0, 0, [24, 14]), run(1, 0, [24, 19])]);
  t.is(bestCell(table, 'toy_chair/CHAIR_I', 'minimize'), 0);
  t.is(bestCell(table, 'toy_chair/CHAIR_I', 'maximize'), 1);
  t.is(bestCell(table, undefined, 'minimize'), undefined);
  t.is(bestCell(table, 'toy_pope/accuracy', 'maximize'), undefined);
});

test('CSV: one row per cell and metric, grid keys as columns, per-iteration means, the best row marked', (t) => {
  const table = summarizeSweep(
    [...cells, { index: 2, params: { 'reward.alpha': 'a,"b"' } }],
    [run(0, 0, [24, 14]), run(0, 1, [24, 16]), run(1, 0, [24, 19]), run(2, 0, [24])],
  );
  const lines = sweepCsv(table, 0, 'toy_chair/CHAIR_I').trimEnd().split('\n');
  t.is(lines[0], 'cell,reward.alpha,seeds,metric,mean,sd,n,iter_0,iter_1,best');
  t.is(lines[1], `0,0,0 1,toy_chair/CHAIR_I,15,${Math.SQRT2},2,24,15,1`);
  t.is(lines[2], '0,0,0 1,toy_chair/recall,89,0,2,90,89,0');
  t.is(lines[3], '1,0.9,0,toy_chair/CHAIR_I,19,0,1,24,19,0');
  t.is(lines[5], '2,"a,""b""",0,toy_chair/CHAIR_I,24,0,1,24,,0', 'quoted value; a missing iteration is an empty field');
  t.is(lines.length, 7);
});

test('printed table: mean ± sd per headline metric, the best cell starred, the objective by iteration', (t) => {
  const table = summarizeSweep(cells, [run(0, 0, [24, 14]), run(0, 1, [24, 16]), run(1, 0, [24, 19])]);
  const text = sweepTableText({ table, best: 0, objective: 'toy_chair/CHAIR_I', direction: 'minimize' });
  const [header, first, second] = text.split('\n');
  t.regex(header as string, /reward\.alpha\s+seeds\s+toy_chair\/CHAIR_I\s+toy_chair\/recall\s+toy_chair\/CHAIR_I by iteration/);
  t.regex(first as string, /^\*\s+0\s+0 1\s+15\.000 ± 1\.414\s+89\.000 ± 0\.000\s+24\.000 -> 15\.000$/);
  t.regex(second as string, /^\s+0\.9\s+0\s+19\.000 ± 0\.000/);
  t.regex(text, /best cell by toy_chair\/CHAIR_I \(lowest mean\)/);
});
