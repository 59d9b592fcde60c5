/**
 * Paths: relative config paths mean relative to the config file; a worker refuses relative ones that
 * came some other way; names that become path parts cannot leave their root.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { createRunSetupActivities } from '../activities/run-setup';
import { loadConfig, parseConfig } from '../src/config';
import { csrEnv } from '../src/env';
import { PathEscapeError, insideRoot } from '../src/shared/inside-root';
import { isSafeKey, safeKeyFrom } from '../src/shared/safe-path';
import { tempDir } from './helpers/temporal-harness';

test('relative paths in a config file resolve against its folder, not the working directory', (t) => {
  const dir = tempDir('csr-config-paths-');
  fs.mkdirSync(path.join(dir, 'configs'));
  const file = path.join(dir, 'configs', 'run.yaml');
  fs.writeFileSync(
    file,
    [
      'name: x',
      'iterations: 1',
      'model: { source: path, path: ../models/llava }',
      'clip: { source: path, path: /abs/clip }',
      'prompts: { source: file, file: prompts.json, images_dir: ../images }',
      'evaluate: { benchmarks: [{ name: pope, data_dir: ../eval/pope }] }',
      '',
    ].join('\n'),
  );
  const config = loadConfig(file);
  t.deepEqual(config.model, { source: 'path', path: path.join(dir, 'models', 'llava') });
  t.deepEqual(config.clip, { source: 'path', path: '/abs/clip' });
  t.is(config.prompts.file, path.join(dir, 'configs', 'prompts.json'));
  t.is(config.prompts.images_dir, path.join(dir, 'images'));
  t.is(config.evaluate.benchmarks[0]?.data_dir, path.join(dir, 'eval', 'pope'));
});

test('a worker refuses a relative model path and a run key that leaves the artifact root, for good', async (t) => {
  const env = { ...csrEnv(), artifactsDir: tempDir('csr-artifacts-') };
  const activities = createRunSetupActivities(env);
  const config = parseConfig({ name: 'x', iterations: 1, model: { source: 'path', path: 'models/llava' }, clip: { source: 'path', path: '/c' } });
  const relative = await t.throwsAsync(activities.resolveRunPaths({ config, runKey: 'ok' }), { instanceOf: ApplicationFailure });
  t.regex(relative?.message ?? '', /^model\.path: expected an absolute path/);
  t.true(relative?.nonRetryable);
  const escape = await t.throwsAsync(activities.prepareRun({ config, runKey: '../../x', configHash: 'h' }), { instanceOf: ApplicationFailure });
  t.regex(escape?.message ?? '', /^runKey: expected letters, digits/);
  t.false(fs.existsSync(path.resolve(env.artifactsDir, '../../x')));
});

test('safe keys and roots', (t) => {
  for (const bad of ['..', '../x', 'a/b', '.hidden', 'a..b', '', 'x\u0000']) t.false(isSafeKey(bad), bad);
  for (const good of ['run-1', 'toy_2.v3', 'A']) t.true(isSafeKey(good), good);
  t.true(isSafeKey(safeKeyFrom('nightly-run-2026-01-01T02:00:00Z')));
  t.true(isSafeKey(safeKeyFrom('../../etc')));
  t.is(insideRoot('/r', 'a', 'b'), '/r/a/b');
  t.throws(() => insideRoot('/r', '..', 'x'), { instanceOf: PathEscapeError });
  t.throws(() => insideRoot('/r', '/etc'), { instanceOf: PathEscapeError });
  t.throws(() => insideRoot('/r', '.'), { instanceOf: PathEscapeError });
});
