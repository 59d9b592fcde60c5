/**
 * Turn one logical log-batch into `runs/log-batch` requests within MLflow's limits: at most 1000
 * metrics, 100 params, 100 tags and 1000 entities per request, and a JSON body under 1 MB.
 */

/** Per-request limits of `POST /api/2.0/mlflow/runs/log-batch` (mlflow/utils/validation.py). */
export const BATCH_LIMITS = {
  metrics: 1000,
  params: 100,
  tags: 100,
  entities: 1000,
  /** The server's limit is 1,000,000 bytes; the margin covers the run id and the JSON around the lists. */
  bytes: 950_000,
} as const;

/** One metric point to log. */
export interface MetricInput {
  key: string;
  value: number;
  /** @default 0 */
  step?: number;
  /** Milliseconds since the epoch. @default the time of the logging call */
  timestamp?: number;
}

/** What to log to one run in one call. Params and tags are records, so a key cannot appear twice. */
export interface LogBatchInput {
  metrics?: MetricInput[];
  /** Params are write-once in MLflow: logging the same value again is fine, a different value fails. */
  params?: Record<string, string | number | boolean>;
  tags?: Record<string, string>;
}

/** A metric as the REST API takes it: non-finite values are the strings MLflow's JSON parser accepts. */
export interface WireMetric {
  key: string;
  value: number | 'NaN' | 'Infinity' | '-Infinity';
  timestamp: number;
  step: number;
}

/** A param or tag as the REST API takes it. */
export interface WireKeyValue {
  key: string;
  value: string;
}

/** The lists of one `runs/log-batch` request. */
export interface WireBatch {
  metrics: WireMetric[];
  params: WireKeyValue[];
  tags: WireKeyValue[];
}

function wireValue(value: number): WireMetric['value'] {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return 'Infinity';
  if (value === -Infinity) return '-Infinity';
  return value;
}

/**
 * Fix every default now, so that retrying the same batch later sends the same entities (MLflow
 * then stores each metric point once instead of twice with two timestamps).
 */
export function toWireBatch(input: LogBatchInput, now = Date.now()): WireBatch {
  const metrics = (input.metrics ?? []).map((metric, index) => {
    if (typeof metric.key !== 'string' || metric.key === '') {
      throw new TypeError(`metrics[${index}].key: expected a non-empty string, got ${JSON.stringify(metric.key)}`);
    }
    if (typeof metric.value !== 'number') {
      throw new TypeError(
        `metrics[${index}] (${metric.key}).value: expected a number, got ${JSON.stringify(metric.value)}`,
      );
    }
    const step = metric.step ?? 0;
    if (!Number.isSafeInteger(step)) {
      throw new TypeError(`metrics[${index}] (${metric.key}).step: expected an integer, got ${step}`);
    }
    return { key: metric.key, value: wireValue(metric.value), timestamp: Math.round(metric.timestamp ?? now), step };
  });
  const pairs = (record: Record<string, unknown> | undefined) =>
    Object.entries(record ?? {}).map(([key, value]) => ({ key, value: String(value) }));
  return { metrics, params: pairs(input.params), tags: pairs(input.tags) };
}

const size = (entity: unknown) => Buffer.byteLength(JSON.stringify(entity)) + 1;

/** Split a batch into requests that each fit every limit, keeping the order of the entities. */
export function splitBatch(batch: WireBatch): WireBatch[] {
  const chunks: WireBatch[] = [];
  let current: WireBatch = { metrics: [], params: [], tags: [] };
  let bytes = 0;
  const entityCount = () => current.metrics.length + current.params.length + current.tags.length;
  const add = (list: keyof WireBatch, entity: WireMetric | WireKeyValue, limit: number) => {
    const entityBytes = size(entity);
    const full =
      current[list].length >= limit ||
      entityCount() >= BATCH_LIMITS.entities ||
      bytes + entityBytes > BATCH_LIMITS.bytes;
    if (full && entityCount() > 0) {
      chunks.push(current);
      current = { metrics: [], params: [], tags: [] };
      bytes = 0;
    }
    (current[list] as Array<typeof entity>).push(entity);
    bytes += entityBytes;
  };
  for (const metric of batch.metrics) add('metrics', metric, BATCH_LIMITS.metrics);
  for (const param of batch.params) add('params', param, BATCH_LIMITS.params);
  for (const tag of batch.tags) add('tags', tag, BATCH_LIMITS.tags);
  if (entityCount() > 0) chunks.push(current);
  return chunks;
}
