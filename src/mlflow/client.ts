/**
 * The strict MLflow client: one method per REST call the project needs, every write safe to repeat
 * (Temporal retries activities), every failure an {@link MlflowError}.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ARTIFACT_PROXY_PREFIX, encodeArtifactPath, proxyRoot } from './artifact-path';
import { splitBatch, toWireBatch, type LogBatchInput, type WireBatch } from './batch';
import { MlflowError } from './errors';
import { tagEquals, tagsFilter } from './filter';
import { resolveTransportOptions, Transport, type TransportOptions } from './http';
import { mlflowAuthHeaders, splitCredentials } from './auth';
import {
  responses,
  type ArtifactFile,
  type Experiment,
  type Metric,
  type Run,
  type RunInfo,
  type RunStatus,
} from './schemas';

/** Tag MLflow reads to nest a run under its parent in the UI. */
export const PARENT_RUN_TAG = 'mlflow.parentRunId';
/** Tag that carries the idempotency key of runs made by {@link MlflowClient.findOrCreateRun}. */
export const IDEMPOTENCY_TAG = 'csr.idempotencyKey';

/** Options of {@link MlflowClient}; see {@link TransportOptions} for each default. */
export type MlflowClientOptions = TransportOptions;

/** What to create a run with. */
export interface CreateRunInput {
  experimentId: string;
  /** Run name shown in the UI. @default a name MLflow makes up */
  name?: string;
  /** Milliseconds since the epoch. @default now */
  startTime?: number;
  tags?: Record<string, string>;
  /** Nest the new run under this one (sets the `mlflow.parentRunId` tag). */
  parentRunId?: string;
}

/** What identifies and describes a run for {@link MlflowClient.findOrCreateRun}. */
export interface FindOrCreateRunInput extends CreateRunInput {
  /** Unique within the experiment for the run's lifetime, e.g. `<workflowId>/<step>`; stored as the `csr.idempotencyKey` tag. */
  idempotencyKey: string;
  name: string;
}

/** Which runs to search. */
export interface SearchRunsInput {
  experimentIds: string[];
  /** MLflow filter string, e.g. built with `tagsFilter`. @default all runs */
  filter?: string;
  /** e.g. `['attributes.start_time ASC']`. @default MLflow's: newest first */
  orderBy?: string[];
  /** Stop after this many runs (pages are fetched until then). @default 1000 */
  maxResults?: number;
  /** @default 'ACTIVE_ONLY' */
  runViewType?: 'ACTIVE_ONLY' | 'DELETED_ONLY' | 'ALL';
}

/** How long a caller that created a run waits before it looks for racers' runs once more. */
const RACE_SETTLE_MS = 500;

/** Typed client of one MLflow tracking server's REST API. */
/** MLflow 3's experiment type tag: the UI opens a GenAI experiment on its traces page. */
export const EXPERIMENT_KIND_TAG = 'mlflow.experimentKind';
/** What the UI calls "Machine learning" / model training (its `custom_model_development`). */
export const EXPERIMENT_KIND = 'custom_model_development';

export class MlflowClient {
  private readonly transport: Transport;
  /** A run's artifact location never changes, so one lookup per run is enough. */
  private readonly artifactRoots = new Map<string, string>();

  constructor(
    readonly options: MlflowClientOptions,
    /** Where MLFLOW_TRACKING_TOKEN / _USERNAME / _PASSWORD are read. @default process.env */
    auth: NodeJS.ProcessEnv = process.env,
  ) {
    // Credentials go in a header (fetch refuses `user:pass@` URLs), never in the URI anyone sees.
    const headers = { ...mlflowAuthHeaders(options.trackingUri, auth), ...options.headers };
    this.transport = new Transport(resolveTransportOptions({ ...options, trackingUri: splitCredentials(options.trackingUri).uri, headers }));
    this.auth = auth;
  }

  private readonly auth: NodeJS.ProcessEnv;

  /** Tracking server URL without a trailing slash. */
  get trackingUri(): string {
    return this.transport.options.trackingUri;
  }

  /** The same server with other options, e.g. fewer retries for a caller that buffers failures itself. */
  withOptions(overrides: Partial<MlflowClientOptions>): MlflowClient {
    return new MlflowClient({ ...this.options, ...overrides }, this.auth);
  }

  /** The experiment of that name, or undefined if there is none. */
  async getExperimentByName(name: string): Promise<Experiment | undefined> {
    try {
      const body = await this.transport.json(
        { method: 'GET', path: '/api/2.0/mlflow/experiments/get-by-name', query: { experiment_name: name } },
        responses.experiment,
      );
      return body.experiment;
    } catch (error) {
      if (error instanceof MlflowError && error.errorCode === 'RESOURCE_DOES_NOT_EXIST') return undefined;
      throw error;
    }
  }

  /** Create an experiment; returns its id. Fails with RESOURCE_ALREADY_EXISTS if the name is taken. */
  async createExperiment(name: string, options: { tags?: Record<string, string> } = {}): Promise<string> {
    const body = await this.transport.json(
      {
        method: 'POST',
        path: '/api/2.0/mlflow/experiments/create',
        json: { name, tags: Object.entries(options.tags ?? {}).map(([key, value]) => ({ key, value })) },
      },
      responses.createExperiment,
    );
    return body.experiment_id;
  }

  /** Set (or overwrite) one tag of an experiment. */
  async setExperimentTag(experimentId: string, key: string, value: string): Promise<void> {
    await this.transport.json(
      { method: 'POST', path: '/api/2.0/mlflow/experiments/set-experiment-tag', json: { experiment_id: experimentId, key, value } },
      responses.empty,
    );
  }

  /**
   * The experiment of that name, created if missing; safe when several callers race to create it. It
   * is marked as model training ({@link EXPERIMENT_KIND_TAG}), so MLflow 3's UI does not open it on its
   * GenAI traces page; an older experiment without the mark gets it.
   */
  async getOrCreateExperiment(name: string): Promise<Experiment> {
    const existing = await this.getExperimentByName(name);
    if (existing && existing.lifecycleStage !== 'deleted' && existing.tags[EXPERIMENT_KIND_TAG] === undefined) {
      await this.setExperimentTag(existing.experimentId, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND);
      existing.tags[EXPERIMENT_KIND_TAG] = EXPERIMENT_KIND;
    }
    if (existing) {
      if (existing.lifecycleStage === 'deleted') {
        throw new MlflowError(
          `experiment ${JSON.stringify(name)} (id ${existing.experimentId}) is deleted; restore it in the MLflow UI or pick another name`,
          { endpoint: 'GET /api/2.0/mlflow/experiments/get-by-name', errorCode: 'RESOURCE_DELETED', retryable: false },
        );
      }
      return existing;
    }
    try {
      await this.createExperiment(name, { tags: { [EXPERIMENT_KIND_TAG]: EXPERIMENT_KIND } });
    } catch (error) {
      // Someone else (or our own retried request) created it first: that is the outcome we wanted.
      if (!(error instanceof MlflowError && error.errorCode === 'RESOURCE_ALREADY_EXISTS')) throw error;
    }
    const created = await this.getExperimentByName(name);
    if (!created) {
      throw new MlflowError(`experiment ${JSON.stringify(name)} was created but cannot be read back`, {
        endpoint: 'GET /api/2.0/mlflow/experiments/get-by-name',
        retryable: true,
      });
    }
    return created;
  }

  /** Create a run. Not idempotent by itself: use {@link findOrCreateRun} from retried code. */
  async createRun(input: CreateRunInput): Promise<Run> {
    const tags: Record<string, string> = { ...input.tags };
    if (input.parentRunId !== undefined) tags[PARENT_RUN_TAG] = input.parentRunId;
    const body = await this.transport.json(
      {
        method: 'POST',
        path: '/api/2.0/mlflow/runs/create',
        json: {
          experiment_id: input.experimentId,
          run_name: input.name,
          start_time: input.startTime ?? Date.now(),
          tags: Object.entries(tags).map(([key, value]) => ({ key, value })),
        },
      },
      responses.run,
    );
    return body.run;
  }

  /** A run with its latest metrics, params and tags. */
  async getRun(runId: string): Promise<Run> {
    const body = await this.transport.json(
      { method: 'GET', path: '/api/2.0/mlflow/runs/get', query: { run_id: runId } },
      responses.run,
    );
    return body.run;
  }

  /** Change a run's status, end time or name. */
  async updateRun(runId: string, update: { status?: RunStatus; endTime?: number; name?: string }): Promise<RunInfo> {
    const body = await this.transport.json(
      {
        method: 'POST',
        path: '/api/2.0/mlflow/runs/update',
        json: { run_id: runId, status: update.status, end_time: update.endTime, run_name: update.name },
      },
      responses.updateRun,
    );
    return body.run_info;
  }

  /** End a run: status (default FINISHED) and end time (default now). */
  setTerminated(runId: string, status: RunStatus = 'FINISHED', endTime = Date.now()): Promise<RunInfo> {
    return this.updateRun(runId, { status, endTime });
  }

  /** Mark a run deleted (MLflow keeps it, hidden, until garbage collection). */
  async deleteRun(runId: string): Promise<void> {
    await this.transport.json(
      { method: 'POST', path: '/api/2.0/mlflow/runs/delete', json: { run_id: runId } },
      responses.empty,
    );
  }

  /** Runs matching a filter, following pages until `maxResults`. */
  async searchRuns(input: SearchRunsInput): Promise<Run[]> {
    const maxResults = input.maxResults ?? 1000;
    const runs: Run[] = [];
    let pageToken: string | undefined;
    do {
      const body = await this.transport.json(
        {
          method: 'POST',
          path: '/api/2.0/mlflow/runs/search',
          json: {
            experiment_ids: input.experimentIds,
            filter: input.filter ?? '',
            run_view_type: input.runViewType ?? 'ACTIVE_ONLY',
            max_results: Math.min(maxResults - runs.length, 1000),
            order_by: input.orderBy ?? [],
            page_token: pageToken,
          },
        },
        responses.searchRuns,
      );
      runs.push(...body.runs);
      pageToken = body.next_page_token || undefined;
    } while (pageToken && runs.length < maxResults);
    return runs;
  }

  /** Active runs of these experiments whose tags include all of `tags`. */
  findRunsByTags(experimentIds: string[], tags: Record<string, string>): Promise<Run[]> {
    return this.searchRuns({ experimentIds, filter: tagsFilter(tags) });
  }

  /**
   * The run carrying this idempotency key, created (nested under `parentRunId` if given) if there is none.
   *
   * A retried create can make a second run when the first answer was lost; after creating, the
   * runs with the key are searched again and all callers settle on the oldest one (ties: lowest
   * run id), deleting their own if it lost. A caller that finds only its own run looks once more
   * after {@link RACE_SETTLE_MS}, or three times its own create's duration when that is longer: a
   * racer's create may still have been in flight, and its run may be the older one. (MLflow has no
   * create-if-absent, so a create in flight longer than that can still make a second run.)
   */
  async findOrCreateRun(input: FindOrCreateRunInput): Promise<Run> {
    const byKey = tagEquals(IDEMPOTENCY_TAG, input.idempotencyKey);
    const find = async () => oldest(await this.searchRuns({ experimentIds: [input.experimentId], filter: byKey }));
    const existing = await find();
    if (existing) return this.checkParent(existing, input);
    const createStarted = Date.now();
    const created = await this.createRun({
      ...input,
      tags: { ...input.tags, [IDEMPOTENCY_TAG]: input.idempotencyKey },
    });
    // A racer's create started about when ours did and takes about as long: on a loaded server that
    // is more than RACE_SETTLE_MS, so wait a few of our own create times when those are longer.
    const settleMs = Math.max(RACE_SETTLE_MS, 3 * (Date.now() - createStarted));
    let winner = (await find()) ?? created;
    if (winner.info.runId === created.info.runId) {
      await new Promise((resolve) => setTimeout(resolve, settleMs));
      winner = (await find()) ?? created;
    }
    if (winner.info.runId !== created.info.runId) await this.deleteRun(created.info.runId);
    return this.checkParent(winner, input);
  }

  private checkParent(run: Run, input: FindOrCreateRunInput): Run {
    const parent = run.data.tags[PARENT_RUN_TAG];
    if (input.parentRunId !== undefined && parent !== input.parentRunId) {
      throw new TypeError(
        `idempotency key ${JSON.stringify(input.idempotencyKey)} already names run ${run.info.runId} ` +
          `${parent ? `under parent ${parent}` : 'without a parent'}, not under ${input.parentRunId}; use a key unique per run`,
      );
    }
    return run;
  }

  /**
   * Log metrics, params and tags, split into as many requests as MLflow's batch limits need.
   * Safe to repeat: MLflow keeps identical metric points once, accepts an unchanged param, and
   * overwrites tags. Give metrics a `timestamp` where the call may be repeated (a retried activity):
   * the default, the time of the call, differs between attempts and MLflow then keeps both points.
   * Not atomic across requests: after a failure, repeat the whole call.
   */
  logBatch(runId: string, input: LogBatchInput): Promise<void> {
    return this.logWireBatch(runId, toWireBatch(input));
  }

  /** {@link logBatch} for a batch whose defaults are already fixed (as the resilient tracker spools it). */
  async logWireBatch(runId: string, batch: WireBatch): Promise<void> {
    for (const chunk of splitBatch(batch)) {
      await this.transport.json(
        { method: 'POST', path: '/api/2.0/mlflow/runs/log-batch', json: { run_id: runId, ...chunk } },
        responses.empty,
      );
    }
  }

  /** Set (or overwrite) one tag. */
  async setTag(runId: string, key: string, value: string): Promise<void> {
    await this.transport.json(
      { method: 'POST', path: '/api/2.0/mlflow/runs/set-tag', json: { run_id: runId, key, value } },
      responses.empty,
    );
  }

  /** Every point of one metric, in the order MLflow returns them, following pages. */
  async getMetricHistory(runId: string, key: string): Promise<Metric[]> {
    const metrics: Metric[] = [];
    let pageToken: string | undefined;
    do {
      const body = await this.transport.json(
        {
          method: 'GET',
          path: '/api/2.0/mlflow/metrics/get-history',
          query: { run_id: runId, metric_key: key, max_results: 25_000, page_token: pageToken },
        },
        responses.metricHistory,
      );
      metrics.push(...body.metrics);
      pageToken = body.next_page_token || undefined;
    } while (pageToken);
    return metrics;
  }

  /** Upload bytes as `artifactPath` (e.g. `plots/loss.png`) of a run, through the server's artifact proxy. */
  async uploadArtifact(runId: string, artifactPath: string, content: Uint8Array | string): Promise<void> {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    await this.putArtifact(runId, artifactPath, async () => bytes);
  }

  /** Upload a local file, streamed from disk, as `artifactPath` (default: its file name). */
  async logArtifactFile(runId: string, localPath: string, artifactPath = path.basename(localPath)): Promise<void> {
    if (!fs.statSync(localPath).isFile()) throw new TypeError(`logArtifactFile: ${localPath} is not a file`);
    await this.putArtifact(runId, artifactPath, () => fs.openAsBlob(localPath));
  }

  /** Files and folders directly under `folder` (default: the run's artifact root), paths relative to that root. */
  async listArtifacts(runId: string, folder?: string): Promise<ArtifactFile[]> {
    const files: ArtifactFile[] = [];
    let pageToken: string | undefined;
    do {
      const body = await this.transport.json(
        {
          method: 'GET',
          path: '/api/2.0/mlflow/artifacts/list',
          query: { run_id: runId, path: folder, page_token: pageToken },
        },
        responses.listArtifacts,
      );
      files.push(...body.files);
      pageToken = body.next_page_token || undefined;
    } while (pageToken);
    return files;
  }

  /** The bytes of one artifact, through the server's artifact proxy. */
  async downloadArtifact(runId: string, artifactPath: string): Promise<Buffer> {
    return this.transport.bytes({
      method: 'GET',
      path: await this.artifactUrlPath(runId, artifactPath),
      artifact: true,
    });
  }

  private async putArtifact(
    runId: string,
    artifactPath: string,
    bytes: () => Promise<Blob | Uint8Array>,
  ): Promise<void> {
    const urlPath = await this.artifactUrlPath(runId, artifactPath);
    await this.transport.json({ method: 'PUT', path: urlPath, bytes, artifact: true }, responses.empty);
  }

  private async artifactUrlPath(runId: string, artifactPath: string): Promise<string> {
    const encoded = encodeArtifactPath(artifactPath);
    let root = this.artifactRoots.get(runId);
    if (root === undefined) {
      root = proxyRoot((await this.getRun(runId)).info.artifactUri, runId);
      this.artifactRoots.set(runId, root);
    }
    return `${ARTIFACT_PROXY_PREFIX}/${root}/${encoded}`;
  }
}

/** The run every caller agrees on among duplicates: earliest start, then lowest id. */
function oldest(runs: Run[]): Run | undefined {
  return [...runs].sort(
    (a, b) => (a.info.startTime ?? 0) - (b.info.startTime ?? 0) || a.info.runId.localeCompare(b.info.runId),
  )[0];
}
