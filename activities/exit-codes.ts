/**
 * How a compute step's exit becomes a Temporal outcome. The codes themselves live in one place,
 * `compute/csr_compute/exit_codes.json`, read by both the Python contract and this module, so the two
 * sides cannot disagree about which failures a retry can fix.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';

/** Where the shared exit-code table lives. */
export const exitCodesFile = path.resolve(__dirname, '..', 'compute', 'csr_compute', 'exit_codes.json');

/** The exit-code table as the Python side defines it. */
export interface ExitCodes {
  ok: number;
  bad_spec: number;
  missing_input: number;
  retryable: number;
  /** Codes that no retry can fix. */
  non_retryable: number[];
}

/** `ApplicationFailure.type` of each compute failure, for retry policies and for callers that branch on it. */
export const ComputeFailureType = {
  /** Exit 2: the spec is wrong; fix the config. Never retried. */
  badSpec: 'ComputeBadSpec',
  /** Exit 3: a model, data set or upstream artifact is missing. Never retried. */
  missingInput: 'ComputeMissingInput',
  /** Anything else (75, crashes, signals): a retry may succeed. */
  retryable: 'ComputeRetryable',
  /** Exit 0 without the manifest the step promised: a bug in the step, which a retry would repeat. */
  noManifest: 'ComputeNoManifest',
  /** A step sent to a worker that cannot serve it (too many GPUs asked of a single-GPU worker). */
  wrongQueue: 'ComputeWrongQueue',
  /** The disk was full (ENOSPC, EDQUOT), for the step or for the activity's own writes: retried. */
  noSpace: 'ComputeNoSpace',
} as const;

function loadExitCodes(file: string): ExitCodes {
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<ExitCodes>;
  for (const key of ['ok', 'bad_spec', 'missing_input', 'retryable'] as const) {
    if (!Number.isInteger(raw[key])) throw new TypeError(`${file}: ${key}: expected an integer, got ${raw[key]}`);
  }
  if (!Array.isArray(raw.non_retryable) || !raw.non_retryable.every(Number.isInteger)) {
    throw new TypeError(`${file}: non_retryable: expected a list of integers`);
  }
  return raw as ExitCodes;
}

/** The exit-code table, read once. */
export const EXIT_CODES: ExitCodes = loadExitCodes(exitCodesFile);

/** How a compute child process ended, plus what it said about it. */
export interface StepExit {
  step: string;
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Message of the step's last `error` event, if it printed one. */
  errorMessage?: string;
  /** Kind of that event (`bad_spec`, `crash`, `out_of_memory`, ...). */
  errorKind?: string;
  /** The end of the step's stderr log. */
  stderrTail?: string;
  /** The full log, named in the failure so a person can read the rest. */
  logFile?: string;
}

/** Details attached to each compute failure (small: the stderr tail is capped by the caller). */
export interface ComputeFailureDetails {
  step: string;
  exitCode: number | null;
  signal: string | null;
  errorKind: string | null;
  logFile: string | null;
}

function failureTypeOf(code: number): string {
  if (code === EXIT_CODES.bad_spec) return ComputeFailureType.badSpec;
  if (code === EXIT_CODES.missing_input) return ComputeFailureType.missingInput;
  // A code listed as non-retryable without a dedicated name still must not be retried.
  return ComputeFailureType.badSpec;
}

function describeEnd(exit: StepExit): string {
  if (exit.code !== null) return `exited with code ${exit.code}`;
  const hint = exit.signal === 'SIGKILL' ? ' (out of memory, or killed by someone else)' : '';
  return `was killed by ${exit.signal ?? 'an unknown signal'}${hint}`;
}

/**
 * The Temporal outcome of a step's exit: undefined for success, else the failure to throw.
 *
 * Non-retryable codes carry the step's own error message (it names the field or file to fix);
 * everything else is retryable and also carries the stderr tail, since a crash's cause is there.
 */
export function failureForExit(exit: StepExit): ApplicationFailure | undefined {
  if (exit.code === EXIT_CODES.ok) return undefined;
  const details: ComputeFailureDetails = {
    step: exit.step,
    exitCode: exit.code,
    signal: exit.signal,
    errorKind: exit.errorKind ?? null,
    logFile: exit.logFile ?? null,
  };
  const said = exit.errorMessage ? `: ${exit.errorMessage}` : '';
  if (exit.code !== null && EXIT_CODES.non_retryable.includes(exit.code)) {
    const message = exit.errorMessage
      ? `${exit.step}: ${exit.errorMessage}`
      : `${exit.step} ${describeEnd(exit)}${exit.logFile ? `; see ${exit.logFile}` : ''}`;
    return ApplicationFailure.nonRetryable(message, failureTypeOf(exit.code), details);
  }
  const tail = exit.stderrTail?.trim();
  const where = exit.logFile ? ` (${exit.logFile})` : '';
  const message = `${exit.step} ${describeEnd(exit)}${said}${tail ? `\n--- end of stderr${where} ---\n${tail}` : ''}`;
  // A full disk gets its own type (the same one the activity uses for its own writes), so it can be told apart.
  const type = exit.errorKind === 'no_space' ? ComputeFailureType.noSpace : ComputeFailureType.retryable;
  return ApplicationFailure.retryable(message, type, details);
}
