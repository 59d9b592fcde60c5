/**
 * The plan of a sweep, resolved by the CLI before anything starts: the cells and their validated
 * configs, one child run per cell and seed with a run key derived from the sweep key (so a resumed
 * sweep finds every finished step), and the groups of runs whose iteration 0 is the same work.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig, type CsrConfig } from '../../../src/config';
import { repoRoot } from '../../../src/env';
import { evaluateSteps } from '../../../src/shared/plan';
import type { CsrRunInput, RunPaths } from '../../../src/shared/run-types';
import type { SweepBaseline, SweepInput, SweepRunPlan } from '../../../src/shared/sweep-types';
import { configHash } from '../run-command';
import { GridError, cellConfigs, expandGrid, parseGrid } from './grid';

/** Runs one sweep may hold. */
export const MAX_RUNS = 400;

/** What `csr sweep` was asked for. */
export interface SweepOptions {
  /** Config file every cell starts from. */
  config: string;
  /** `--grid KEY=V1,V2` options, in the order given. */
  grid: string[];
  /** Seeds per cell: the config's `seed` + 0..N-1. */
  seeds: number;
  /** Child runs at once. @default all */
  maxParallel?: number;
  /** Git commit of the code. */
  codeVersion?: string;
  /** Time stamp of the sweep key. @default now */
  now?: Date;
}

const sha256 = (text: string) => crypto.createHash('sha256').update(text).digest('hex');

function stamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\..+$/, '').replace('T', '-');
}

/**
 * Everything iteration 0 reads, for runs that may share it: the evaluate steps' specs without their
 * output folders, planned with stand-in paths that name what the real paths depend on (the starting
 * model and the toy world seed). Built by the same function the workflow uses, so a field added to
 * the evaluate spec later is part of the identity without anyone remembering to add it here.
 */
export function iteration0Identity(config: CsrConfig): string {
  const world = `toyworld-seed-${config.toyworld.seed}`;
  const paths: RunPaths = {
    artifactRoot: '/',
    baseModel: config.model.source === 'path' ? `path:${config.model.path}` : `${world}/lvlm`,
    clip: '',
    promptsFile: '',
    imagesDir: '',
    toyworldDir: world,
  };
  const specs = evaluateSteps(config, paths, 0, paths.baseModel).map(({ spec: { out_dir: _out, ...spec } }) => spec);
  return JSON.stringify(specs);
}

/** Resolve a sweep: a ConfigError (the file) or GridError (the grid) before anything starts. */
export function planSweep(options: SweepOptions): SweepInput {
  if (!Number.isInteger(options.seeds) || options.seeds < 1) throw new TypeError(`--seeds: expected integer >= 1, got ${options.seeds}`);
  const base = loadConfig(options.config);
  const raw = parseYaml(fs.readFileSync(options.config, 'utf8')) as unknown;
  const axes = parseGrid(options.grid);
  const cells = expandGrid(axes);
  const configs = cellConfigs(raw, cells, base, options.config);
  const seeds = Array.from({ length: options.seeds }, (_, i) => base.seed + i);
  // Each run's resolved config (~2 KB) travels in the sweep's start input, which Temporal caps at 2 MB.
  if (cells.length * seeds.length > MAX_RUNS) {
    throw new GridError([`--grid: ${cells.length} cells x ${seeds.length} seeds = ${cells.length * seeds.length} runs; one sweep takes at most ${MAX_RUNS}, split the grid`]);
  }
  const baseHash = configHash(base);
  const sweepKey = `${base.name}-sweep-${sha256(JSON.stringify([baseHash, axes, seeds])).slice(0, 8)}-${stamp(options.now ?? new Date())}`;
  const configFile = path.relative(repoRoot, path.resolve(options.config));

  const baselines = new Map<string, SweepBaseline>();
  const runs: SweepRunPlan[] = [];
  for (const cell of cells) {
    for (const seed of seeds) {
      const config: CsrConfig = { ...(configs[cell.index] as CsrConfig), seed };
      const hash = configHash(config);
      let iteration0Key: string | undefined;
      if (config.evaluate.benchmarks.length > 0) {
        iteration0Key = `${sweepKey}-base-${sha256(iteration0Identity(config)).slice(0, 8)}`;
        if (!baselines.has(iteration0Key)) baselines.set(iteration0Key, { key: iteration0Key, config, configHash: hash });
      }
      const input: CsrRunInput = {
        config,
        configHash: hash,
        runKey: `${sweepKey}-c${cell.index}-s${seed}`,
        configFile,
        nextIteration: 0,
        history: [],
        ...(options.codeVersion ? { codeVersion: options.codeVersion } : {}),
        ...(iteration0Key ? { iteration0Key } : {}),
        sweep: { key: sweepKey },
      };
      runs.push({ cell: cell.index, seed, input });
    }
  }
  return {
    sweepKey,
    experimentName: base.name,
    configFile,
    grid: axes,
    seeds,
    cells,
    runs,
    baselines: [...baselines.values()],
    ...(base.evaluate.objective ? { objective: base.evaluate.objective } : {}),
    direction: base.evaluate.objective_direction,
    ...(options.maxParallel ? { maxParallel: options.maxParallel } : {}),
    ...(options.codeVersion ? { codeVersion: options.codeVersion } : {}),
  };
}
