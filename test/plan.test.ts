import test from 'ava';
import * as path from 'node:path';
import { loadConfig } from '../src/config';
import { evaluateSteps, generateSteps, iterationPhases, iterationPlan } from '../src/shared/plan';
import type { RunPaths } from '../src/shared/run-types';

const repo = path.resolve(__dirname, '..');
const paths: RunPaths = {
  artifactRoot: '/runs/key',
  baseModel: '/models/lvlm',
  clip: '/models/clip',
  promptsFile: '/data/prompts.json',
  imagesDir: '/data/images',
};

test('calibrated pruning gets the CLIP folder and the reward section in every generate spec', (t) => {
  const config = loadConfig(path.join(repo, 'configs', 'toy.yaml'));
  config.generate.prune_by = 'calibrated';
  config.workers.gpu_shards = 2;
  const steps = generateSteps(config, paths, 1, paths.baseModel);
  t.is(steps.length, 2);
  for (const step of steps) {
    t.is(step.spec.clip, '/models/clip');
    t.deepEqual(step.spec.reward, config.reward);
  }
});

test('self-reward pruning keeps CLIP out of the generate spec', (t) => {
  const config = loadConfig(path.join(repo, 'configs', 'toy.yaml'));
  config.generate.prune_by = 'self_reward';
  const [step] = generateSteps(config, paths, 1, paths.baseModel);
  t.false('clip' in (step?.spec ?? {}));
  t.false('reward' in (step?.spec ?? {}));
});

test("a benchmark entry's split and options reach its evaluate spec as the benchmark's fields", (t) => {
  const config = loadConfig(path.join(repo, 'configs', 'toy.yaml'));
  config.evaluate.benchmarks = [{ name: 'mme', data_dir: '/data/mme', limit: 0, split: 'test', options: { parse: 'lmms_eval', passes: 3 } }];
  const [step] = evaluateSteps(config, paths, 1, '/models/merged');
  t.deepEqual(step!.spec.benchmark, { name: 'mme', data_dir: '/data/mme', limit: 0, split: 'test', parse: 'lmms_eval', passes: 3 });
});

test('an iteration is its phases in order, each saying where it runs; iteration 0 only evaluates', (t) => {
  const config = loadConfig(path.join(repo, 'configs', 'toy.yaml'));
  config.workers.gpu_shards = 2;
  const shape = (dpoGpus: number) => {
    config.workers.dpo_gpus = dpoGpus;
    return iterationPhases(config, paths, 1, '/models/lvlm').map((p) => [p.name, p.steps.length, p.runsOn, p.gpuCount]);
  };
  const benchmarks = config.evaluate.benchmarks.length;
  t.deepEqual(shape(1), [
    ['generate', 2, 'gpu', undefined],
    ['reward', 2, 'gpu', undefined],
    ['curate', 1, 'cpu', undefined],
    ['dpo', 1, 'gpu', undefined],
    ['merge', 1, 'gpu', undefined],
    ['evaluate', benchmarks, 'gpu', undefined],
  ]);
  t.deepEqual(shape(4)[3], ['dpo', 1, 'host', 4]);
  t.deepEqual(
    iterationPhases(config, paths, 0, '/models/lvlm').map((p) => p.name),
    ['evaluate'],
  );
  // The evaluation reads the merged model; the dry-run plan is the phases' steps.
  const phases = iterationPhases(config, paths, 1, '/models/lvlm');
  t.is(phases[5]!.steps[0]!.spec.model, '/runs/key/iter-01/merge/model');
  t.deepEqual(iterationPlan(config, paths, 1, '/models/lvlm'), phases.flatMap((p) => p.steps));
});
