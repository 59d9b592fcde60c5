/**
 * Zod schemas of the MLflow REST responses this client reads, each transformed into the camelCase
 * shape the rest of the code uses. Unknown fields are dropped, so newer servers that add fields
 * still validate; missing or mistyped fields the client relies on fail with the field named.
 */
import { z } from 'zod';

/** int64 fields arrive as JSON numbers from MLflow's server, as strings from some proxies and older versions. */
const int64 = z.union([z.number().int(), z.string().regex(/^-?\d+$/)]).transform(Number);

/** JSON has no NaN or infinities; MLflow writes them as these strings. */
const metricValue = z
  .union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])])
  .transform((value) => (typeof value === 'number' ? value : Number(value)));

const keyValue = z.object({ key: z.string(), value: z.string() });
const keyValues = z
  .array(keyValue)
  .default([])
  .transform((items) => Object.fromEntries(items.map((item) => [item.key, item.value])) as Record<string, string>);

/** Lifecycle states of an MLflow run. */
export const runStatus = z.enum(['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED']);
/** Lifecycle state of an MLflow run. */
export type RunStatus = z.infer<typeof runStatus>;

/** One metric point. */
export const metricSchema = z
  .object({ key: z.string(), value: metricValue, timestamp: int64, step: int64.default(0) })
  .transform((m) => ({ key: m.key, value: m.value, timestamp: m.timestamp, step: m.step }));
/** One metric point as MLflow stores it. */
export type Metric = z.output<typeof metricSchema>;

/** An experiment. */
export const experimentSchema = z
  .object({
    experiment_id: z.string(),
    name: z.string(),
    artifact_location: z.string().optional(),
    lifecycle_stage: z.string(),
    tags: keyValues.optional(),
  })
  .transform((e) => ({
    experimentId: e.experiment_id,
    name: e.name,
    artifactLocation: e.artifact_location,
    lifecycleStage: e.lifecycle_stage,
    tags: e.tags ?? {},
  }));
/** An MLflow experiment. */
export type Experiment = z.output<typeof experimentSchema>;

/** Run metadata. */
export const runInfoSchema = z
  .object({
    run_id: z.string().min(1),
    experiment_id: z.string(),
    run_name: z.string().optional(),
    status: runStatus,
    start_time: int64.optional(),
    end_time: int64.optional(),
    artifact_uri: z.string(),
    lifecycle_stage: z.string(),
  })
  .transform((i) => ({
    runId: i.run_id,
    experimentId: i.experiment_id,
    runName: i.run_name,
    status: i.status,
    startTime: i.start_time,
    endTime: i.end_time,
    artifactUri: i.artifact_uri,
    lifecycleStage: i.lifecycle_stage,
  }));
/** Metadata of an MLflow run. */
export type RunInfo = z.output<typeof runInfoSchema>;

/** A run with its latest metrics, params and tags. */
export const runSchema = z
  .object({
    info: runInfoSchema,
    data: z
      .object({
        metrics: z
          .array(metricSchema)
          .default([])
          .transform((items) => Object.fromEntries(items.map((m) => [m.key, m])) as Record<string, Metric>),
        params: keyValues,
        tags: keyValues,
      })
      .default({ metrics: {}, params: {}, tags: {} }),
  })
  .transform((r) => ({ info: r.info, data: r.data }));
/** An MLflow run: metadata plus its latest metric point per key, params and tags, each keyed by name. */
export type Run = z.output<typeof runSchema>;

/** One entry of an artifact listing. */
export const artifactFileSchema = z
  .object({ path: z.string(), is_dir: z.boolean().default(false), file_size: int64.optional() })
  .transform((f) => ({ path: f.path, isDir: f.is_dir, fileSize: f.file_size }));
/** One file or folder of a run's artifacts, `path` relative to the run's artifact root. */
export type ArtifactFile = z.output<typeof artifactFileSchema>;

/** Response schemas, one per endpoint the client calls. */
export const responses = {
  experiment: z.object({ experiment: experimentSchema }),
  createExperiment: z.object({ experiment_id: z.string().min(1) }),
  run: z.object({ run: runSchema }),
  updateRun: z.object({ run_info: runInfoSchema }),
  searchRuns: z.object({ runs: z.array(runSchema).default([]), next_page_token: z.string().optional() }),
  metricHistory: z.object({ metrics: z.array(metricSchema).default([]), next_page_token: z.string().optional() }),
  listArtifacts: z.object({
    root_uri: z.string().optional(),
    files: z.array(artifactFileSchema).default([]),
    next_page_token: z.string().optional(),
  }),
  /** Writes answer `{}`; anything else that is a JSON object is accepted too. */
  empty: z.object({}),
} as const;
