/**
 * What crosses the Temporal boundary between the CLI, the workflows and the activities: small
 * objects of references (paths, hashes, counts), never the artifacts themselves.
 */
import type { CsrConfig } from '../config/schema';

/** Where a run's inputs and outputs are, resolved once by the prepare step. */
export interface RunPaths {
  /** Artifact root of this run: every step writes under it, keyed so that a resume finds them. */
  artifactRoot: string;
  /** Starting model (iteration 1's policy and reference). */
  baseModel: string;
  /** CLIP judge of the reward step. */
  clip: string;
  /** Prompt set (csr-prompts-12k.json format). */
  promptsFile: string;
  imagesDir: string;
  /** Toy world only: ground-truth scenes for the quality of preference pairs. */
  groundTruth?: string;
  /** Toy world only: its folder (the toy benchmarks' data default). */
  toyworldDir?: string;
  /**
   * Root of iteration 0 when runs of a sweep share it (`$CSR_HOME/artifacts/<iteration0Key>`);
   * unset = under `artifactRoot` like every other iteration.
   */
  iteration0Root?: string;
}

/**
 * MLflow runs of a CSR run, named by idempotency keys so that every write can be retried (and
 * buffered through an MLflow outage) without creating a second run.
 */
export interface TrackingRefs {
  /** The experiment: the config's name. */
  experimentName: string;
  /** Idempotency key of the parent run (the run key). */
  parentKey: string;
  /** The parent run's id, when MLflow answered at the start. */
  parentRunId?: string;
  /** The sweep this run belongs to: its MLflow run is nested under the sweep's. */
  sweep?: SweepRef;
}

/** A run's place in a sweep. */
export interface SweepRef {
  /** The sweep key (idempotency key of the sweep's MLflow run). */
  key: string;
  /** The sweep's MLflow run id, when MLflow answered when the sweep started. */
  parentRunId?: string;
}

/** The MLflow run of one iteration. */
export interface IterationTracking {
  key: string;
  /** Undefined while MLflow is unreachable: the iteration's writes then name the run by its key (spooled). */
  runId?: string;
}

/** One step of one iteration, as status shows it. */
export interface StepSummary {
  step: string;
  /** e.g. `shard-0`, a benchmark name. */
  label?: string;
  state: 'pending' | 'running' | 'done' | 'skipped' | 'failed';
  itemsTotal?: number;
  itemsReused?: number;
  itemsComputed?: number;
  wallSeconds?: number;
  startedAt?: string;
  endedAt?: string;
}

/** What one finished iteration leaves behind (kept across continue-as-new, so small). */
export interface IterationSummary {
  iteration: number;
  /** Merged model of this iteration (the next iteration's policy). 0 = the base model. */
  model: string;
  /** `<benchmark>/<metric>` -> value. */
  metrics: Record<string, number>;
  /** Flat statistics (curation, DPO) logged on the iteration's MLflow run. */
  stats: Record<string, number>;
  steps: StepSummary[];
  /** Did this iteration improve the configured objective over the previous one? */
  improved?: boolean;
  mlflowRunId?: string;
}

/**
 * What `trackIterationEnd` logs of one finished iteration (its input), fixed by the iteration's workflow. Under
 * patch 'tracking-carry' the iteration hands it back and the run carries it onto the next iteration's tracking lane.
 */
export interface IterationEndTracking {
  tracking: TrackingRefs;
  iterationRunId?: string;
  iteration: number;
  metrics: Record<string, number>;
  stats: Record<string, number>;
  curateDir?: string;
  /** The iteration's DPO folder: its curves (metrics.jsonl) are delivered here; the step itself never talks to MLflow. */
  dpoDir?: string;
  evaluateDirs: string[];
  artifactRoot: string;
  /** Milliseconds since the epoch, fixed by the workflow: a retried activity logs identical points, which MLflow keeps once. */
  timestamp: number;
}

/** What `trackRunStart` needs to find or create a run's MLflow parent run (the activity's input). */
export interface RunTrackingStart {
  config: CsrConfig;
  configHash: string;
  runKey: string;
  workflowId: string;
  codeVersion?: string;
  resumedFrom?: string;
  sweep?: SweepRef;
}

/** What an iteration's workflow returns: its summary and, when the run asked for them, its MLflow refs and logging still to do. */
export interface IterationResult extends IterationSummary {
  /** This iteration's `trackIterationEnd`, not yet run: the run carries it on (`CsrIterationInput.handBackTracking`). */
  trackingEnd?: IterationEndTracking;
  /** The run's MLflow parent run, opened by this iteration (`CsrIterationInput.openRunTracking`). */
  runTracking?: TrackingRefs;
}

/** Input of the run workflow; also its continue-as-new state. */
export interface CsrRunInput {
  config: CsrConfig;
  /** sha256 of the resolved config: part of every artifact key. */
  configHash: string;
  /** Names this run's artifacts; a resumed run keeps its predecessor's key to reuse its work. */
  runKey: string;
  /** Config file name, for people. */
  configFile?: string;
  /** Set after preparation. */
  paths?: RunPaths;
  tracking?: TrackingRefs;
  /** Next iteration to run (0 = evaluate the base model). */
  nextIteration: number;
  history: IterationSummary[];
  /** Parameter changes sent by the `setParams` update, applied from the next iteration on. */
  overrides?: ParamOverrides;
  /** The workflow this run resumes, if any. */
  resumedFrom?: string;
  /** Git commit of the code that started the run. */
  codeVersion?: string;
  /** Artifact key of a shared iteration 0 (a sweep computes it once for the runs that agree on it). */
  iteration0Key?: string;
  /** The sweep this run is a cell of. */
  sweep?: SweepRef;
  /** The server has the CSR search attributes registered: the run upserts them (config, iteration, objective). */
  searchAttributes?: boolean;
  /**
   * The last finished iteration's MLflow logging, not yet done (patch 'tracking-carry'): the next iteration runs
   * it first on its tracking lane, or the run itself before it ends.
   */
  pendingTracking?: IterationEndTracking;
}

/** The config sections a running run may change, from its next iteration on. */
export const PARAM_SECTIONS = ['generate', 'reward', 'curate', 'dpo'] as const;
type ParamSection = (typeof PARAM_SECTIONS)[number];

/** The parameters in force that differ from the run's config: whole sections, and the iteration count. */
export type ParamOverrides = Partial<Pick<CsrConfig, ParamSection>> & {
  iterations?: number;
};

/** What the `setParams` update sends: some fields of some sections (the rest stay as they are), or the iteration count. */
export type ParamPatch = { [S in ParamSection]?: Partial<CsrConfig[S]> } & { iterations?: number };

/** Input of one iteration's workflow. */
export interface CsrIterationInput {
  config: CsrConfig;
  configHash: string;
  runKey: string;
  iteration: number;
  paths: RunPaths;
  tracking?: TrackingRefs;
  /** Policy and reference of this iteration: the previous iteration's merged model. */
  model: string;
  /** Objective value of the previous iteration, for the gate. */
  previousObjective?: number;
  parentWorkflowId: string;
  /** The previous iteration's `trackIterationEnd` (patch 'tracking-carry'): the first call on this iteration's tracking lane. */
  carriedTracking?: IterationEndTracking;
  /**
   * The run has no MLflow parent run yet (patch 'run-tracking-lane'): this iteration opens it (`trackRunStart`) first on
   * its tracking lane instead of the run waiting for it before the iteration starts, and returns its refs (`runTracking`).
   */
  openRunTracking?: RunTrackingStart;
  /**
   * Return this iteration's `trackIterationEnd` in the result (`trackingEnd`) instead of waiting for it: the run
   * carries it on, so the next iteration starts at once (patch 'tracking-carry').
   */
  handBackTracking?: boolean;
}

/** What the run workflow's status query returns. */
export interface RunStatus {
  workflowId: string;
  runKey: string;
  phase: 'preparing' | 'running' | 'paused' | 'done' | 'stopped' | 'failed';
  iterations: number;
  currentIteration?: number;
  currentStep?: string;
  currentChildId?: string;
  paused: boolean;
  history: IterationSummary[];
  resumedFrom?: string;
  /** The config's `evaluate.objective` and its direction, for the summary table. */
  objective?: string;
  objectiveDirection?: 'minimize' | 'maximize';
  /** The run's MLflow experiment and parent run, for a link to its page. */
  mlflow?: { experimentName: string; runId?: string };
}

/** What the iteration workflow's status query returns. */
export interface IterationStatus {
  iteration: number;
  currentStep?: string;
  paused: boolean;
  steps: StepSummary[];
}
