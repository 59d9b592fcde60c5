/**
 * Where every step of a run writes, and the exact spec it gets: pure functions of the config, the
 * run's paths and the iteration. The workflows use them to launch steps, and `csr resume --dry-run`
 * uses the same functions to tell, before anything starts, which steps already have a valid result.
 * A step's folder is keyed by the run key (which carries the config hash), so a resumed run that
 * keeps the key finds every finished step where it left it.
 */
import type { CsrConfig, BenchmarkSpec } from '../config/schema';
import type { RunPaths } from './run-types';

/** A compute step to launch: the step name, its spec (with `out_dir`), a label for people. */
export interface PlannedStep {
  step: 'generate' | 'reward' | 'curate' | 'dpo' | 'merge' | 'evaluate' | 'toyworld-build';
  label: string;
  spec: { out_dir: string } & Record<string, unknown>;
}

const join = (...parts: string[]) => parts.join('/').replace(/\/+/g, '/');
const pad = (n: number) => String(n).padStart(2, '0');

/** Folder of one iteration's artifacts (iteration 0 under the shared root when a sweep shares it). */
export function iterationDir(paths: RunPaths, iteration: number): string {
  const root = iteration === 0 && paths.iteration0Root ? paths.iteration0Root : paths.artifactRoot;
  return join(root, `iter-${pad(iteration)}`);
}

/** Prompt sample of one iteration (written by the sample-prompts activity). */
export function promptSampleFile(paths: RunPaths, iteration: number): string {
  return join(iterationDir(paths, iteration), 'prompts.json');
}

/** What the sample-prompts activity gets before an iteration's generate phase: `prompts.limit` prompts, seeded per `prompts.sample`. */
export function promptSampleInput(
  config: CsrConfig,
  paths: RunPaths,
  iteration: number,
): { source: string; target: string; limit: number; seed: number } {
  return {
    source: paths.promptsFile,
    target: promptSampleFile(paths, iteration),
    limit: config.prompts.limit,
    seed: config.prompts.sample === 'fixed' ? config.seed : config.seed * 1000 + iteration,
  };
}

/** Whether an iteration improved `evaluate.objective` in its direction; undefined when there is nothing to compare. */
export function improvedObjective(config: CsrConfig, current: number | undefined, previous: number | undefined): boolean | undefined {
  if (current === undefined || previous === undefined) return undefined;
  return config.evaluate.objective_direction === 'minimize' ? current < previous : current > previous;
}

/** Whether the run goes on after an iteration: not when it did not improve and `evaluate.stop_when_worse` is set. */
export function continuesAfter(config: CsrConfig, improved: boolean | undefined): boolean {
  return !(improved === false && config.evaluate.stop_when_worse);
}

function shards(config: CsrConfig): number[] {
  return Array.from({ length: config.workers.gpu_shards }, (_, index) => index);
}

/** One generate step per shard. */
export function generateSteps(config: CsrConfig, paths: RunPaths, iteration: number, model: string): PlannedStep[] {
  return shards(config).map((index) => ({
    step: 'generate',
    label: `shard-${index}`,
    spec: {
      out_dir: join(iterationDir(paths, iteration), 'generate', `shard-${index}`),
      model,
      prompts_file: promptSampleFile(paths, iteration),
      images_dir: paths.imagesDir,
      shard: { index, count: config.workers.gpu_shards },
      params: config.generate,
      // Calibrated pruning (the paper's) scores every depth's sentences with CLIP while the tree grows.
      ...(config.generate.prune_by === 'calibrated' ? { clip: paths.clip, reward: config.reward } : {}),
      seed: config.seed + iteration,
      device: 'auto',
    },
  }));
}

/** One reward step per generate shard. */
export function rewardSteps(config: CsrConfig, paths: RunPaths, iteration: number, generated: PlannedStep[]): PlannedStep[] {
  return generated.map((gen, index) => ({
    step: 'reward',
    label: `shard-${index}`,
    spec: {
      out_dir: join(iterationDir(paths, iteration), 'reward', `shard-${index}`),
      trees: [join(gen.spec.out_dir, 'trees.jsonl')],
      clip: paths.clip,
      images_dir: paths.imagesDir,
      params: config.reward,
      device: 'auto',
    },
  }));
}

export function curateStep(config: CsrConfig, paths: RunPaths, iteration: number, rewarded: PlannedStep[]): PlannedStep {
  return {
    step: 'curate',
    label: 'pairs',
    spec: {
      out_dir: join(iterationDir(paths, iteration), 'curate'),
      scored: rewarded.map((r) => join(r.spec.out_dir, 'scored.jsonl')),
      images_dir: paths.imagesDir,
      params: config.curate,
      ...(paths.groundTruth ? { ground_truth: paths.groundTruth } : {}),
    },
  };
}

export function dpoStep(config: CsrConfig, paths: RunPaths, iteration: number, model: string, curated: PlannedStep): PlannedStep {
  return {
    step: 'dpo',
    label: 'train',
    spec: {
      out_dir: join(iterationDir(paths, iteration), 'dpo'),
      model,
      pairs: [join(curated.spec.out_dir, 'pairs.jsonl')],
      images_dir: paths.imagesDir,
      params: config.dpo,
      seed: config.seed + iteration,
      device: 'auto',
    },
  };
}

export function mergeStep(paths: RunPaths, iteration: number, model: string, trained: PlannedStep): PlannedStep {
  return {
    step: 'merge',
    label: 'merge',
    spec: {
      out_dir: join(iterationDir(paths, iteration), 'merge'),
      model,
      adapter: join(trained.spec.out_dir, 'adapter'),
    },
  };
}

/** The merged model folder a merge step produces. */
export function mergedModel(merge: PlannedStep): string {
  return join(merge.spec.out_dir, 'model');
}

/** Toy benchmarks default to the toy world's copies; real ones need a data_dir in the config. */
export function benchmarkDataDir(benchmark: BenchmarkSpec, paths: RunPaths): string | undefined {
  if (benchmark.data_dir) return benchmark.data_dir;
  const toy = /^toy_(.+)$/.exec(benchmark.name);
  if (toy && paths.toyworldDir) return join(paths.toyworldDir, 'benchmarks', toy[1] as string);
  return undefined;
}

/** One evaluate step per configured benchmark. */
export function evaluateSteps(config: CsrConfig, paths: RunPaths, iteration: number, model: string): PlannedStep[] {
  return config.evaluate.benchmarks.map((benchmark) => {
    const dataDir = benchmarkDataDir(benchmark, paths);
    return {
      step: 'evaluate',
      label: benchmark.name,
      spec: {
        out_dir: join(iterationDir(paths, iteration), 'evaluate', benchmark.name),
        model,
        benchmark: {
          name: benchmark.name,
          ...(dataDir ? { data_dir: dataDir } : {}),
          ...(benchmark.image_dir ? { image_dir: benchmark.image_dir } : {}),
          limit: benchmark.limit,
          ...(benchmark.split ? { split: benchmark.split } : {}),
          ...benchmark.options, // the evaluate step reads every other key of `benchmark` as the benchmark's own field
        },
        batch_size: config.evaluate.batch_size,
        ...(config.evaluate.max_new_tokens ? { max_new_tokens: config.evaluate.max_new_tokens } : {}),
        // Not the loop seed: decoding is greedy and the seed only pins kernels, so every loop seed is
        // measured by the same instrument, and a sweep's seeds share iteration 0's evaluation.
        seed: 0,
        device: 'auto',
        ...(config.evaluate.judge ? { judge: config.evaluate.judge } : {}),
      },
    };
  });
}

/** One phase of an iteration: steps that run side by side, after the phase before has finished. */
export interface Phase {
  /** What the pause gate and the iteration's status call it: the name of its steps. */
  name: PlannedStep['step'];
  steps: PlannedStep[];
  /**
   * Where its steps run: the shared GPU queue; the CPU worker (curate needs no GPU); or the queue of one
   * host's multi-GPU worker, which claims `gpuCount` GPUs of that host at once (`workers.dpo_gpus` > 1).
   */
  runsOn: 'gpu' | 'cpu' | 'host';
  gpuCount?: number;
}

/**
 * The phases of one iteration in order: generate (sharded), reward (sharded), curate, DPO, merge,
 * evaluate (one step per benchmark). Iteration 0 only evaluates the base model. The iteration workflow
 * runs them; `csr resume --dry-run` lists their steps.
 */
export function iterationPhases(config: CsrConfig, paths: RunPaths, iteration: number, model: string): Phase[] {
  if (iteration === 0) return [{ name: 'evaluate', steps: evaluateSteps(config, paths, 0, model), runsOn: 'gpu' }];
  const generated = generateSteps(config, paths, iteration, model);
  const rewarded = rewardSteps(config, paths, iteration, generated);
  const curated = curateStep(config, paths, iteration, rewarded);
  const trained = dpoStep(config, paths, iteration, model, curated);
  const merged = mergeStep(paths, iteration, model, trained);
  const dpoGpus = config.workers.dpo_gpus;
  return [
    { name: 'generate', steps: generated, runsOn: 'gpu' },
    { name: 'reward', steps: rewarded, runsOn: 'gpu' },
    { name: 'curate', steps: [curated], runsOn: 'cpu' },
    { name: 'dpo', steps: [trained], ...(dpoGpus > 1 ? { runsOn: 'host', gpuCount: dpoGpus } : { runsOn: 'gpu' }) },
    { name: 'merge', steps: [merged], runsOn: 'gpu' },
    { name: 'evaluate', steps: evaluateSteps(config, paths, iteration, mergedModel(merged)), runsOn: 'gpu' },
  ];
}

/** Every step of one iteration in order: the steps of its phases. */
export function iterationPlan(config: CsrConfig, paths: RunPaths, iteration: number, model: string): PlannedStep[] {
  return iterationPhases(config, paths, iteration, model).flatMap((phase) => phase.steps);
}

/** The model an iteration starts from: the base for 0 and 1, else the previous iteration's merged model. */
export function iterationStartModel(paths: RunPaths, iteration: number): string {
  if (iteration <= 1) return paths.baseModel;
  return join(iterationDir(paths, iteration - 1), 'merge', 'model');
}
