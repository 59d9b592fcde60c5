/**
 * A full disk is a retryable failure of one step, never the end of the worker. Writes the activity
 * itself makes (spec file, log header, a child's stray stdout lines) can fail with ENOSPC; the step
 * fails with a message naming ENOSPC and the path, and Temporal retries it once space is freed.
 */
import { ApplicationFailure } from '@temporalio/common';
import { ComputeFailureType } from './exit-codes';

/** errno codes that mean "this filesystem cannot take the write now", which freeing space or quota fixes. */
const DISK_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

/** `ApplicationFailure.type` of a step that failed for a full disk (retryable). */
export const NO_SPACE_FAILURE = ComputeFailureType.noSpace;

/** The errno code of `error` when it is a full-disk error, else undefined. */
export function diskErrorCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && DISK_CODES.has(code) ? code : undefined;
}

/** The retryable failure for a full-disk error met while running `label`, whose files live in `folder`. */
export function noSpaceFailure(label: string, error: NodeJS.ErrnoException, folder: string): ApplicationFailure {
  // A failed write() names no path (only open() does): then name the folder the step was writing.
  const where = error.path ? ` writing ${error.path}` : ` writing under ${folder}`;
  return ApplicationFailure.retryable(
    `${label}: ${error.code}${where} (${error.message}); free space on that filesystem and the step is retried`,
    NO_SPACE_FAILURE,
    { code: error.code, path: error.path ?? folder },
  );
}
