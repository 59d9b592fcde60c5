import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { ApplicationFailure } from '@temporalio/common';
import { ComputeFailureType, EXIT_CODES, failureForExit, type StepExit } from '../activities/exit-codes';
import { csrEnv } from '../src/env';

/**
 * Run `python -m csr_compute curate` (the one step that loads no torch: a second) on `spec` and return
 * its exit as the activity sees it: the code and the message of its `error` event.
 */
function runCurate(spec: Record<string, unknown>): StepExit {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-exit-codes-'));
  try {
    const specFile = path.join(dir, 'spec.json');
    const outDir = path.join(dir, String(spec.out_dir ?? 'out'));
    fs.writeFileSync(specFile, JSON.stringify({ images_dir: dir, ...spec, out_dir: outDir }));
    const child = spawnSync(csrEnv().python, ['-m', 'csr_compute', 'curate', '--spec', specFile], {
      encoding: 'utf8',
      env: { ...process.env, CSR_WATCH_PARENT: '0' },
      timeout: 120_000,
    });
    const events = child.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { event: string; kind?: string; message?: string });
    const error = events.filter((event) => event.event === 'error').pop();
    return {
      step: 'curate',
      code: child.status,
      signal: child.signal,
      errorMessage: error?.message,
      errorKind: error?.kind,
      stderrTail: child.stderr,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the compute package exits with the codes this side maps: bad spec and missing input fail for good, a crash is retried', (t) => {
  const scored = (dir: string) => [path.join(dir, 'reward', 'scored.jsonl')];
  const bad = runCurate({ scored: scored(os.tmpdir()), params: { sample_size: -1 } });
  const badFailure = failureForExit(bad);
  t.is(badFailure?.type, ComputeFailureType.badSpec, JSON.stringify(bad));
  t.true(badFailure?.nonRetryable);
  t.is(badFailure?.message, 'curate: params.sample_size: expected an integer >= 0, got -1');

  const missing = runCurate({ scored: [path.join(os.tmpdir(), 'no-such-run', 'scored.jsonl')], params: {} });
  const missingFailure = failureForExit(missing);
  t.is(missingFailure?.type, ComputeFailureType.missingInput, JSON.stringify(missing));
  t.true(missingFailure?.nonRetryable);
  t.regex(missingFailure?.message ?? '', /no-such-run\/scored\.jsonl' does not exist/);

  // An out_dir under a regular file: the step cannot create its folder, an OSError the package calls a crash.
  const crash = runCurate({ scored: scored(os.tmpdir()), params: {}, out_dir: 'spec.json/out' });
  const crashFailure = failureForExit(crash);
  t.is(crash.code, EXIT_CODES.retryable, JSON.stringify(crash));
  t.is(crashFailure?.type, ComputeFailureType.retryable);
  t.false(crashFailure?.nonRetryable);
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
