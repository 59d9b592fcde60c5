import * as fs from 'node:fs';
import test from 'ava';
import { ApplicationFailure } from '@temporalio/common';
import { ComputeFailureType, EXIT_CODES, exitCodesFile, failureForExit } from '../activities/exit-codes';

test('the table is the one in compute/csr_compute/exit_codes.json', (t) => {
  const raw = JSON.parse(fs.readFileSync(exitCodesFile, 'utf8'));
  t.deepEqual(EXIT_CODES.non_retryable, raw.non_retryable);
  t.is(EXIT_CODES.retryable, raw.retryable);
});

test('exit 0 is success', (t) => {
  t.is(failureForExit({ step: 'curate', code: 0, signal: null }), undefined);
});

test('bad spec and missing input are non-retryable and carry the step message', (t) => {
  const bad = failureForExit({
    step: 'dpo',
    code: EXIT_CODES.bad_spec,
    signal: null,
    errorMessage: 'beta: expected > 0, got -1',
  });
  t.true(bad instanceof ApplicationFailure);
  t.true(bad?.nonRetryable);
  t.is(bad?.type, ComputeFailureType.badSpec);
  t.is(bad?.message, 'dpo: beta: expected > 0, got -1');
  const missing = failureForExit({
    step: 'reward',
    code: EXIT_CODES.missing_input,
    signal: null,
    errorMessage: 'no clip',
  });
  t.true(missing?.nonRetryable);
  t.is(missing?.type, ComputeFailureType.missingInput);
});

test('75, other codes and signals are retryable and carry the stderr tail', (t) => {
  for (const exit of [
    { code: EXIT_CODES.retryable, signal: null },
    { code: 1, signal: null },
    { code: null, signal: 'SIGKILL' as NodeJS.Signals },
  ]) {
    const failure = failureForExit({
      step: 'generate',
      ...exit,
      errorMessage: 'CUDA out of memory',
      stderrTail: 'Traceback: boom\n',
    });
    t.false(failure?.nonRetryable, JSON.stringify(exit));
    t.is(failure?.type, ComputeFailureType.retryable);
    t.regex(failure?.message ?? '', /CUDA out of memory/);
    t.regex(failure?.message ?? '', /Traceback: boom/);
  }
  t.regex(failureForExit({ step: 'generate', code: null, signal: 'SIGKILL' })?.message ?? '', /killed by SIGKILL/);
});
