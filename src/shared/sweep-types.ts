/**
 * What crosses the Temporal boundary for a sweep: the plan the CLI resolves (every cell's config
 * validated, every run key fixed), the sweep workflow's status, and its result. Plain data only: the
 * sweep workflow imports these types inside its sandbox.
 */
import type { CsrConfig } from '../config/schema';
import type { CsrRunInput } from './run-types';

/** A grid value as YAML parsed it from the command line. */
export type GridValue = string | number | boolean | null;

/** One cell of the grid: a value for each grid key. */
export interface SweepCell {
  /** Position in the grid (row-major over the `--grid` options in the order given). */
  index: number;
  /** Dotted config key -> value, e.g. `{"reward.alpha": 0.5}`. */
  params: Record<string, GridValue>;
}

/** One child run of the sweep: a cell with one seed. */
export interface SweepRunPlan {
  cell: number;
  seed: number;
  /** The child run's input, with `runKey` derived from the sweep key so that a resumed sweep finds its work. */
  input: CsrRunInput;
}

/**
 * Iteration 0 of several runs evaluates the same starting model on the same benchmarks with the same
 * settings: the sweep computes it once under `key`, and those runs read it from there.
 */
export interface SweepBaseline {
  /** Artifact key of the shared iteration 0 (`$CSR_HOME/artifacts/<key>/iter-00/`). */
  key: string;
  /** The config of one of the runs that share it (they agree on everything iteration 0 reads). */
  config: CsrConfig;
  configHash: string;
}

/** Input of the sweep workflow (and of a resumed sweep, which keeps `sweepKey`). */
export interface SweepInput {
  /** Names every run key, the shared iteration 0 and the MLflow parent run; kept by a resume. */
  sweepKey: string;
  /** The MLflow experiment: the base config's name (a grid cannot change it). */
  experimentName: string;
  configFile?: string;
  /** The `--grid` options as given, for people and MLflow. */
  grid: { key: string; values: GridValue[] }[];
  /** Seeds every cell runs with (the config's `seed` + 0..N-1). */
  seeds: number[];
  cells: SweepCell[];
  runs: SweepRunPlan[];
  baselines: SweepBaseline[];
  /** Metric that marks the best cell, and which way is better. */
  objective?: string;
  direction: 'minimize' | 'maximize';
  /** Child runs at once; undefined = all (the workers' task slots are the real limit). */
  maxParallel?: number;
  /** The sweep workflow this one resumes. */
  resumedFrom?: string;
  codeVersion?: string;
}

/** One child run as the sweep sees it. */
export interface SweepRunState {
  cell: number;
  seed: number;
  runKey: string;
  workflowId: string;
  state: 'pending' | 'running' | 'done' | 'failed';
  /** `<benchmark>/<metric>` -> value, per finished iteration (index = iteration, 0 first). */
  metricsByIteration?: Record<string, number>[];
  /** Items the run computed (not reused) per iteration: all 0 when a resume reused the whole run. */
  computedByIteration?: number[];
  failure?: string;
}

/** What the sweep workflow's status query returns. */
export interface SweepStatus {
  sweepKey: string;
  phase: 'tracking' | 'baseline' | 'running' | 'summarizing' | 'done' | 'failed';
  runs: SweepRunState[];
}

/** Mean and sample sd over seeds of one metric of one cell. */
export interface MetricSummary {
  /** Mean over seeds at each run's last iteration. */
  mean: number;
  /** Sample sd (n - 1) over those seeds; 0 when n = 1. */
  sd: number;
  /** Seeds that reported the metric at their last iteration. */
  n: number;
  /** Mean over seeds per iteration, iteration 0 first. */
  by_iteration: number[];
}

/** One cell of the table, the shape `csr sweep --json` prints. */
export interface CellSummary {
  params: Record<string, GridValue>;
  seeds: number[];
  metrics: Record<string, MetricSummary>;
}

/** The sweep's table: exactly what `--json` prints. */
export interface SweepTable {
  cells: CellSummary[];
}

/** Result of the sweep workflow. */
export interface SweepResult {
  table: SweepTable;
  /** Index into `table.cells` of the best cell by the objective, when there is one. */
  best?: number;
  objective?: string;
  direction: 'minimize' | 'maximize';
  runs: SweepRunState[];
  mlflowParentRunId?: string;
}
