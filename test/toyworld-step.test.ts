/**
 * The toy world build as an ordinary step: prepareRun decides its spec without starting Python, the
 * compute-step activity runs it (spec in, manifest out), the run's paths come through the step folder's
 * link, a cached world is reused and never rebuilt, and a finished step is skipped without Python.
 * A test-size world (seconds) in a temporary cache, in the SDK's MockActivityEnvironment.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { MockActivityEnvironment } from '@temporalio/testing';
import { type ComputeStepInput, type StepResult, createRunComputeStep } from '../activities';
import { createRunSetupActivities } from '../activities/run-setup';
import { parseConfig } from '../src/config';
import { csrEnv } from '../src/env';
import { evaluateSteps } from '../src/shared/plan';
import { toyDataDir } from '../app/cli/score-command';
import { tempDir, venvPython } from './helpers/temporal-harness';

const TINY = { n_sft_scenes: 160, n_prompt_scenes: 24, n_heldout_scenes: 20, lvlm_steps: 4, lvlm_batch: 8, clip_steps: 4, clip_batch: 16 };
const NO_PYTHON = '/nonexistent/python';

const runStep = (input: ComputeStepInput, python = venvPython): Promise<StepResult> =>
  new MockActivityEnvironment().run(
    createRunComputeStep({ env: { python, venv: path.dirname(path.dirname(venvPython)) }, gpus: [], workerId: 'mock' }),
    input,
  );

/** Every file of the world with its modification time: a rebuild would change them. */
const mtimes = (dir: string) =>
  Object.fromEntries(
    (fs.readdirSync(dir, { recursive: true }) as string[])
      .map((name) => path.join(dir, name))
      .filter((file) => fs.statSync(file).isFile())
      .map((file) => [file, fs.statSync(file).mtimeMs]),
  );

test('the toy world build is a step: built once, linked from each run, reused, skipped without Python', async (t) => {
  const home = tempDir('csr-toyworld-step-');
  const env = { ...csrEnv(), python: NO_PYTHON, artifactsDir: path.join(home, 'artifacts'), toyworldRoot: path.join(home, 'toyworld') };
  const setup = createRunSetupActivities(env);
  const config = parseConfig({ name: 'toy', iterations: 1, model: { source: 'toyworld' }, clip: { source: 'toyworld' } });

  // prepareRun names the step and nothing else: no Python (env.python does not exist), no world folder yet.
  const prepared = await setup.prepareRun({ config, runKey: 'run-a', configHash: 'h' });
  t.is(prepared.toyworldDir, undefined);
  const build = prepared.toyworldBuild!;
  t.is(build.step, 'toyworld-build');
  t.is(build.spec.out_dir, path.join(env.artifactsDir, 'run-a', 'toyworld'));
  t.false(fs.existsSync(env.toyworldRoot));

  const tiny = (input: ComputeStepInput): ComputeStepInput => ({ ...input, spec: { ...input.spec, ...TINY } });
  const first = await runStep(tiny(build));
  t.false(first.skipped);
  t.true(first.itemsComputed > 0, 'the first build computes the world');
  t.is(first.stats.built, 1);
  const paths = await setup.resolveRunPaths({ config, runKey: 'run-a', toyworldBuildDir: first.outDir });
  const world = path.dirname(paths.baseModel);
  t.is(path.dirname(world), env.toyworldRoot, 'the run reads the cached world, not a copy');
  t.is(paths.clip, path.join(world, 'clip'));
  t.is(paths.promptsFile, path.join(world, 'prompts.json'));
  t.is(paths.toyworldDir, world);
  const built = mtimes(world);

  // A second run: Python runs, finds the world and links it; nothing is rebuilt.
  const other = (await setup.prepareRun({ config, runKey: 'run-b', configHash: 'h' })).toyworldBuild!;
  const second = await runStep(tiny(other));
  t.false(second.skipped);
  t.is(second.itemsComputed, 0);
  t.is(second.stats.built, 0);
  t.is((await setup.resolveRunPaths({ config, runKey: 'run-b', toyworldBuildDir: second.outDir })).toyworldDir, world);
  t.deepEqual(mtimes(world), built, 'the cached world was not rebuilt');

  // The same run again (a resume): skipped by the activity from its manifest, without starting Python.
  const again = await runStep(tiny(build), NO_PYTHON);
  t.true(again.skipped);

  // The world is gone: the step's manifest no longer holds, so the step runs again and builds it.
  fs.rmSync(world, { recursive: true });
  const rebuilt = await runStep(tiny(build));
  t.false(rebuilt.skipped);
  t.is(rebuilt.stats.built, 1);
  t.true(fs.existsSync(path.join(world, 'manifest.json')));
});

test('a build step folder without a world link fails for good, naming the link', async (t) => {
  const home = tempDir('csr-toyworld-step-');
  const setup = createRunSetupActivities({ ...csrEnv(), artifactsDir: home });
  const config = parseConfig({ name: 'toy', iterations: 1, model: { source: 'toyworld' }, clip: { source: 'toyworld' } });
  const error = await t.throwsAsync(setup.resolveRunPaths({ config, runKey: 'r', toyworldBuildDir: home }));
  t.regex(error?.message ?? '', /world: expected a link to a built toy world/);
});

test('a toy benchmark without data_dir makes the run prepare the toy world, whose folder the evaluate spec names', async (t) => {
  const home = tempDir('csr-toyworld-step-');
  const setup = createRunSetupActivities({ ...csrEnv(), python: NO_PYTHON, artifactsDir: home, toyworldRoot: path.join(home, 'tw') });
  const sources = {
    model: { source: 'path', path: '/m' },
    clip: { source: 'path', path: '/c' },
    prompts: { source: 'file', file: '/p.json', images_dir: '/i' },
  };
  const withToy = parseConfig({ name: 'x', iterations: 1, ...sources, evaluate: { benchmarks: [{ name: 'toy_pope_dev' }] } });
  t.is((await setup.prepareRun({ config: withToy, runKey: 'a', configHash: 'h' })).toyworldBuild?.step, 'toyworld-build');
  const named = parseConfig({ name: 'x', iterations: 1, ...sources, evaluate: { benchmarks: [{ name: 'toy_pope', data_dir: '/d' }] } });
  t.is((await setup.prepareRun({ config: named, runKey: 'b', configHash: 'h' })).toyworldBuild, undefined);
  const paths = { artifactRoot: home, baseModel: '/m', clip: '/c', promptsFile: '/p.json', imagesDir: '/i', toyworldDir: '/w' };
  const [step] = evaluateSteps(withToy, paths, 0, '/m');
  t.is((step?.spec.benchmark as { data_dir?: string }).data_dir, '/w/benchmarks/pope_dev');
});

test('csr score finds a toy benchmark in the one built world under the toy world root (env.ts owns it)', (t) => {
  const root = tempDir('csr-toyworld-root-');
  t.is(toyDataDir('toy_chair_dev', root), undefined, 'no world: the scorer asks for --data');
  fs.mkdirSync(path.join(root, 'abc123', 'benchmarks', 'chair_dev'), { recursive: true });
  fs.mkdirSync(path.join(root, '.abc123.building-1', 'benchmarks', 'chair_dev'), { recursive: true });
  t.is(toyDataDir('toy_chair_dev', root), path.join(root, 'abc123', 'benchmarks', 'chair_dev'));
  t.is(toyDataDir('pope', root), undefined, 'a real benchmark never defaults');
  fs.mkdirSync(path.join(root, 'def456', 'benchmarks', 'chair_dev'), { recursive: true });
  t.is(toyDataDir('toy_chair_dev', root), undefined, 'two worlds: ambiguous, the scorer asks for --data');
});
