/**
 * Before `csr resume SWEEP` (and `csr sweep --resume-from SWEEP`): the sweep's recorded start input is
 * checked the way `csr resume RUN` checks a run's config, so a resume never starts children from a
 * plan that today's code reads differently or that no longer says what the grid says.
 */
import { isDeepStrictEqual } from 'node:util';
import { ConfigError, parseConfig, type CsrConfig } from '../../../src/config';
import type { SweepInput } from '../../../src/shared/sweep-types';
import { configHash } from '../run-command';
import { expandGrid } from './grid';

/** The value at a dotted key (`reward.alpha`, `evaluate.benchmarks.0.limit`), or undefined. */
function valueAt(config: unknown, key: string): unknown {
  let node = config;
  for (const part of key.split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/**
 * The sweep input `old` (of sweep `id`) with every config checked against today's schema, or a
 * ConfigError (exit 2, one line per problem) when a config no longer parses, was changed after the
 * sweep started (its hash), or disagrees with the grid: cells other than the grid's, a cell value
 * not in its run's config, a seed or run key not the plan's, a cell and seed missing or twice.
 */
export function checkSweepInput(old: SweepInput, id: string): SweepInput {
  const problems: string[] = [];
  const parsed = (config: CsrConfig, where: string): CsrConfig => {
    try {
      return parseConfig(config, where, { recorded: true });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems.map((line) => `${where}: ${line}`));
      return config;
    }
  };

  if (!isDeepStrictEqual(old.cells, expandGrid(old.grid))) {
    problems.push(`cells: ${old.cells.length} recorded, not the ${expandGrid(old.grid).length} of the grid ${JSON.stringify(old.grid)}`);
  }
  const seen = new Set<string>();
  const runs = old.runs.map((run) => {
    const where = `cell ${run.cell} seed ${run.seed}`;
    const { config } = run.input;
    if (seen.has(where)) problems.push(`${where}: planned twice`);
    seen.add(where);
    if (configHash(config) !== run.input.configHash) {
      problems.push(`${where}: config changed since the sweep started (its hash is not the recorded ${run.input.configHash.slice(0, 12)})`);
    }
    const cell = old.cells.find((c) => c.index === run.cell);
    if (!cell) problems.push(`${where}: no such cell in the grid`);
    for (const [key, value] of Object.entries(cell?.params ?? {})) {
      const actual = valueAt(config, key);
      if (!isDeepStrictEqual(actual, value)) problems.push(`${where}: ${key} is ${JSON.stringify(actual)}, the grid says ${JSON.stringify(value)}`);
    }
    if (config.seed !== run.seed) problems.push(`${where}: config seed is ${config.seed}`);
    if (config.name !== old.experimentName) problems.push(`${where}: config name ${JSON.stringify(config.name)} is not the sweep's ${JSON.stringify(old.experimentName)}`);
    const key = `${old.sweepKey}-c${run.cell}-s${run.seed}`;
    if (run.input.runKey !== key) problems.push(`${where}: run key ${run.input.runKey}, expected ${key}`);
    return { ...run, input: { ...run.input, config: parsed(config, where) } };
  });
  for (const cell of old.cells) {
    for (const seed of old.seeds) if (!seen.has(`cell ${cell.index} seed ${seed}`)) problems.push(`cell ${cell.index} seed ${seed}: no run planned`);
  }
  const baselines = old.baselines.map((baseline) => ({ ...baseline, config: parsed(baseline.config, `baseline ${baseline.key}`) }));
  if (problems.length > 0) {
    throw new ConfigError(`sweep ${id}`, [...problems, `start a new sweep instead: npx csr sweep --config ${old.configFile ?? 'FILE'} --grid ... --seeds ${old.seeds.length}`]);
  }
  return { ...old, runs, baselines };
}
