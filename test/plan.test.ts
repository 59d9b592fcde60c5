import test from 'ava';
import * as path from 'node:path';
import { loadConfig } from '../src/config';
import { evaluateSteps, generateSteps } from '../src/shared/plan';
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
