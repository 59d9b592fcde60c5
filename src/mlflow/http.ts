/**
 * One MLflow HTTP call: build the URL, send with a timeout, retry transient failures, turn error
 * bodies into {@link MlflowError}s and validate success bodies with a zod schema.
 */
import type { z } from 'zod';
import { formatZodIssues, MlflowError, MlflowResponseError, MlflowUnreachableError, retryableStatus } from './errors';
import { resolveRetryOptions, withRetry, type ResolvedRetryOptions, type RetryOptions } from './retry';

/** Connection settings shared by every call of a client. */
export interface TransportOptions {
  /** Tracking server URL, e.g. `http://127.0.0.1:5000` (a path prefix such as `/mlflow` is kept). */
  trackingUri: string;
  /** Retry policy for network failures, timeouts, 5xx and 429. */
  retry?: RetryOptions;
  /** Timeout of one JSON request. @default 30000 */
  timeoutMs?: number;
  /** Timeout of one artifact upload or download. @default 600000 */
  artifactTimeoutMs?: number;
  /** Extra headers on every request, e.g. `Authorization` for a server behind auth. */
  headers?: Record<string, string>;
}

/** {@link TransportOptions} with defaults filled in. */
export interface ResolvedTransportOptions {
  trackingUri: string;
  retry: ResolvedRetryOptions;
  timeoutMs: number;
  artifactTimeoutMs: number;
  headers: Record<string, string>;
}

/** Fill defaults; reject a tracking URI that is not http(s), since this client speaks only REST. */
export function resolveTransportOptions(options: TransportOptions): ResolvedTransportOptions {
  let url: URL;
  try {
    url = new URL(options.trackingUri);
  } catch {
    throw new TypeError(
      `trackingUri: expected an http(s) URL such as http://127.0.0.1:5000, got ${options.trackingUri}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(
      `trackingUri: this client talks to an MLflow tracking server over HTTP, got ${options.trackingUri}; ` +
        'start one with `mlflow server` (or app/stack/mlflow-server.ts) and pass its http:// URL',
    );
  }
  return {
    trackingUri: options.trackingUri.replace(/\/+$/, ''),
    retry: resolveRetryOptions(options.retry),
    timeoutMs: options.timeoutMs ?? 30_000,
    artifactTimeoutMs: options.artifactTimeoutMs ?? 600_000,
    headers: options.headers ?? {},
  };
}

/** One request; `body` is JSON for the REST API or raw bytes for the artifact proxy. */
export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT';
  /** Path under the tracking URI, starting with `/api/`. */
  path: string;
  query?: Record<string, string | number | undefined>;
  json?: unknown;
  /** Raw body; a function is called once per attempt so a file can be reopened for a retry. */
  bytes?: () => Promise<Blob | Uint8Array>;
  /** Use the artifact timeout instead of the JSON one. */
  artifact?: boolean;
}

/** Sends requests to one tracking server. */
export class Transport {
  constructor(readonly options: ResolvedTransportOptions) {}

  /** Send a JSON request and validate the JSON answer with `schema`. */
  async json<S extends z.ZodType>(spec: RequestSpec, schema: S): Promise<z.output<S>> {
    const endpoint = `${spec.method} ${spec.path}`;
    return withRetry(async () => {
      const response = await this.send(spec);
      const text = await readBody(endpoint, this.options.trackingUri, () => response.text());
      let body: unknown;
      try {
        body = text === '' ? {} : JSON.parse(text);
      } catch {
        throw new MlflowResponseError(endpoint, response.status, `  (body): not JSON (got ${snippet(text)})`);
      }
      const parsed = schema.safeParse(body);
      if (!parsed.success) {
        throw new MlflowResponseError(endpoint, response.status, formatZodIssues(parsed.error, body));
      }
      return parsed.data;
    }, this.options.retry);
  }

  /** Send a request and return the raw body of a 2xx answer. */
  async bytes(spec: RequestSpec): Promise<Buffer> {
    const endpoint = `${spec.method} ${spec.path}`;
    return withRetry(async () => {
      const response = await this.send(spec);
      return Buffer.from(await readBody(endpoint, this.options.trackingUri, () => response.arrayBuffer()));
    }, this.options.retry);
  }

  /** One attempt: a network failure or a non-2xx status becomes an MlflowError. */
  private async send(spec: RequestSpec): Promise<Response> {
    const endpoint = `${spec.method} ${spec.path}`;
    const url = new URL(this.options.trackingUri + spec.path);
    for (const [key, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { ...this.options.headers };
    let body: BodyInit | undefined;
    if (spec.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(spec.json);
    } else if (spec.bytes) {
      headers['content-type'] = 'application/octet-stream';
      body = (await spec.bytes()) as BodyInit;
    }
    let response: Response;
    try {
      response = await fetch(url, {
        method: spec.method,
        headers,
        body,
        signal: AbortSignal.timeout(spec.artifact ? this.options.artifactTimeoutMs : this.options.timeoutMs),
      });
    } catch (error) {
      throw new MlflowUnreachableError(endpoint, this.options.trackingUri, error);
    }
    if (response.ok) return response;
    throw await errorFromResponse(endpoint, response);
  }
}

/**
 * Read a body whose headers arrived: a connection that hangs or drops mid-body (the request's timeout
 * fires while reading) is an outage like a refused connection, not a bug to give up on.
 */
async function readBody<T>(endpoint: string, baseUrl: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw new MlflowUnreachableError(endpoint, baseUrl, error);
  }
}

/** MLflow answers errors with `{"error_code": ..., "message": ...}`; proxies and crashes answer HTML or text. */
async function errorFromResponse(endpoint: string, response: Response): Promise<MlflowError> {
  const text = await response.text().catch(() => '');
  let errorCode: string | undefined;
  let message: string | undefined;
  try {
    const body = JSON.parse(text) as { error_code?: unknown; message?: unknown };
    if (typeof body.error_code === 'string') errorCode = body.error_code;
    if (typeof body.message === 'string') message = body.message;
  } catch {
    // Not JSON: the text snippet below is the best description there is.
  }
  const detail = message ?? (text ? snippet(text) : response.statusText);
  return new MlflowError(`${endpoint}: HTTP ${response.status}${errorCode ? ` ${errorCode}` : ''}: ${detail}`, {
    endpoint,
    status: response.status,
    errorCode,
    retryable: retryableStatus(response.status),
  });
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(flat.length > 200 ? `${flat.slice(0, 197)}...` : flat);
}
