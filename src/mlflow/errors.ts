/** Typed failures of the MLflow client: what was called, what came back, and whether a retry can help. */
import type { z } from 'zod';

/** What the strict client throws for any failed MLflow call. */
export class MlflowError extends Error {
  override name = 'MlflowError';
  /** Method and path of the call, e.g. `POST /api/2.0/mlflow/runs/create`. */
  readonly endpoint: string;
  /** HTTP status; undefined when no response arrived. */
  readonly status: number | undefined;
  /** MLflow's `error_code` (e.g. `RESOURCE_DOES_NOT_EXIST`); undefined when the body had none. */
  readonly errorCode: string | undefined;
  /** True when the same call may succeed later (network failure, timeout, 5xx, 429). */
  readonly retryable: boolean;

  constructor(
    message: string,
    details: { endpoint: string; status?: number; errorCode?: string; retryable: boolean; cause?: unknown },
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.endpoint = details.endpoint;
    this.status = details.status;
    this.errorCode = details.errorCode;
    this.retryable = details.retryable;
  }
}

/** No HTTP response at all: connection refused or reset, DNS failure, timeout. Always retryable. */
export class MlflowUnreachableError extends MlflowError {
  override name = 'MlflowUnreachableError';

  constructor(endpoint: string, baseUrl: string, cause: unknown) {
    super(`${endpoint}: MLflow at ${baseUrl} is unreachable (${describeNetworkError(cause)})`, {
      endpoint,
      retryable: true,
      cause,
    });
  }
}

/** A 2xx response whose body is not what the MLflow REST API documents (wrong server, proxy page, version skew). */
export class MlflowResponseError extends MlflowError {
  override name = 'MlflowResponseError';

  constructor(endpoint: string, status: number, problem: string) {
    super(`${endpoint}: unexpected response from MLflow (HTTP ${status}):\n${problem}`, {
      endpoint,
      status,
      retryable: false,
    });
  }
}

/** HTTP statuses after which the same request can succeed: overload and server-side failures. */
export function retryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/** True for errors worth retrying; anything that is not an {@link MlflowError} is a bug, not an outage. */
export function isRetryable(error: unknown): boolean {
  return error instanceof MlflowError && error.retryable;
}

/** One line per zod issue, `path: message (got value)`, so a bad response names the field at fault. */
export function formatZodIssues(error: z.ZodError, input: unknown): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length === 0 ? '(body)' : issue.path.join('.');
      return `  ${where}: ${issue.message} (got ${preview(valueAt(input, issue.path))})`;
    })
    .join('\n');
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function preview(value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Node's fetch hides the real cause (ECONNREFUSED, ...) one or two `cause` levels down. */
function describeNetworkError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    parts.push(code ? `${current.message} [${code}]` : current.message);
    current = current.cause;
  }
  return parts.length > 0 ? parts.join(': ') : String(error);
}
