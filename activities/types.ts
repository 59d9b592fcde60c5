/** What crosses the Temporal boundary for a compute step: its input, its result, its heartbeat. */

/** Input of `runComputeStep`. */
export interface ComputeStepInput {
  /** Compute step name (`generate`, `reward`, `curate`, `dpo`, `merge`, `evaluate`, `probe`, ...). */
  step: string;
  /** The step's JSON spec; must contain an absolute `out_dir`, where the spec, logs and artifacts go. */
  spec: Record<string, unknown>;
  /**
   * Extra environment for the child (MLFLOW_*, CSR_TORCH_THREADS, ...). CUDA_VISIBLE_DEVICES is the
   * worker's to pin and is rejected here.
   */
  env?: Record<string, string>;
  /** Human label in heartbeats and logs (e.g. `generate shard 2/8`). @default step */
  label?: string;
  /** Interval of the heartbeat timer. @default the worker's, 10000 ms */
  heartbeatEveryMs?: number;
  /**
   * A step that prints no event line for this long is killed and the attempt fails retryably
   * (config `activities.stall_timeout`). @default 1800000 (30 minutes)
   */
  stallTimeoutMs?: number;
  /**
   * GPUs the step needs, all on one host. Only a host worker (`hostQueue(host)`) serves more than one;
   * it takes the first `gpuCount` of its GPUs. CPU workers and stand-ins ignore it (they have no GPU).
   * @default all GPUs of the worker (1 on a GPU worker)
   */
  gpuCount?: number;
  /** Fail when the step exits 0 without writing `manifest.json` (only `probe` writes none). @default true */
  expectManifest?: boolean;
}

/** Result of `runComputeStep`: small on purpose (far below Temporal's payload limits). */
export interface StepResult {
  step: string;
  outDir: string;
  /** sha256 of `manifest.json`'s bytes; null for a step that writes no manifest. */
  manifestSha256: string | null;
  itemsTotal: number;
  itemsReused: number;
  itemsComputed: number;
  /** The manifest's `stats`, finite numbers only, nothing nested. */
  stats: Record<string, number>;
  /** True when a finished, unchanged earlier run was found and nothing was launched. */
  skipped: boolean;
  attempt: number;
  wallSeconds: number;
}

/** What a compute step is doing, as shown in its heartbeat. */
export type StepPhase = 'checking' | 'waiting-for-gpu' | 'waiting-for-folder' | 'running';

/** Heartbeat details of `runComputeStep` (readable in `describe()` and the web UI). */
export interface StepHeartbeat {
  done: number | null;
  total: number | null;
  reused: number | null;
  rate: number | null;
  eta_s: number | null;
  unit: string | null;
  step: string;
  label: string;
  attempt: number;
  /** Group leader of the running child; null before it starts. */
  pid: number | null;
  phase: StepPhase;
  /** GPUs held (or waited for). */
  gpus: string[];
}
