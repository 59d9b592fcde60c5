/**
 * Light activities that prepare a run and read results: where the models, prompts and images are
 * (building nothing themselves: the toy world build is a compute step on a GPU worker), the prompt
 * sample of an iteration, and the evaluation metrics of finished benchmarks.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { JUDGE_KEY_ENVS, judgeKeyProblem } from '../src/config/judge-key';
import type { CsrConfig } from '../src/config/schema';
import { writeFileAtomic } from '../src/shared/atomic-write';
import { insideRoot } from '../src/shared/inside-root';
import { isSafeKey } from '../src/shared/safe-path';
import type { CsrEnv } from '../src/env';
import type { RunPaths } from '../src/shared/run-types';
import type { ComputeStepInput } from './types';

/** What `prepareRun` decides: the toy world build to run first (if the config uses the world). */
export interface PreparedRun {
  artifactRoot: string;
  /** The world's folder, as an earlier version decided it (by asking Python); a recorded history may hold one. */
  toyworldDir?: string;
  /** The `toyworld-build` step: finds the world in the cache (or builds it) and links it from its step folder. */
  toyworldBuild?: ComputeStepInput;
}

/** The world of a finished `toyworld-build` step, under its step folder (a link to the cached world). */
export const builtWorld = (buildDir: string) => path.join(buildDir, 'world');

/** True when the run reads the toy world: as a source, or for a toy benchmark's data (its folder in the world). */
function usesToyworld(config: CsrConfig): boolean {
  const toyBenchmark = config.evaluate.benchmarks.some((b) => b.name.startsWith('toy_') && !b.data_dir);
  const sources = [config.model.source, config.clip.source, config.prompts.source];
  return sources.includes('toyworld') || toyBenchmark;
}

/** A refused input: never retried, names the config field and the value. */
function badInput(field: string, value: string, expected: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`${field}: expected ${expected}, got ${JSON.stringify(value)}`, 'ConfigError');
}

/**
 * A path the worker would otherwise resolve against its own working directory: the CLI makes config
 * paths absolute (relative to the config file), so a relative one came from elsewhere and is refused.
 */
function absolute(field: string, value: string): string {
  if (!path.isAbsolute(value)) throw badInput(field, value, 'an absolute path (the CLI resolves relative paths against the config file)');
  return path.normalize(value);
}

/** `root/key`, refused for good when the key would leave the root. */
function underRoot(root: string, key: string, field: string): string {
  if (!isSafeKey(key)) throw badInput(field, key, 'letters, digits, ., - and _ (it names a folder under the artifact root)');
  return insideRoot(root, key);
}

/** A deterministic shuffle (mulberry32 + Fisher-Yates): the same seed gives the same sample anywhere. */
export function seededSample<T>(items: readonly T[], limit: number, seed: number): T[] {
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return limit > 0 ? copy.slice(0, limit) : copy;
}

/** The world a finished build step links to; a link that leads nowhere fails for good, naming it. */
function realWorld(buildDir: string): string {
  const link = builtWorld(buildDir);
  try {
    return fs.realpathSync(link);
  } catch {
    throw ApplicationFailure.nonRetryable(
      `${link}: expected a link to a built toy world (written by the toyworld-build step), found none`,
      'ConfigError',
    );
  }
}

export function createRunSetupActivities(env: CsrEnv) {
  const toyworldRoot = env.toyworldRoot;

  return {
    /** Decide the run's artifact root and, for the toy world, which world folder to build. */
    async prepareRun(input: { config: CsrConfig; runKey: string; configHash: string }): Promise<PreparedRun> {
      // The workflow checked the config's shape; what only this worker's environment can tell is checked here.
      const judgeProblem = judgeKeyProblem(input.config, process.env[JUDGE_KEY_ENVS]);
      if (judgeProblem) throw ApplicationFailure.nonRetryable(judgeProblem, 'ConfigError');
      const artifactRoot = underRoot(env.artifactsDir, input.runKey, 'runKey');
      fs.mkdirSync(artifactRoot, { recursive: true });
      writeFileAtomic(
        path.join(artifactRoot, 'run.json'),
        JSON.stringify({ runKey: input.runKey, configHash: input.configHash, config: input.config }, null, 2),
      );
      if (!usesToyworld(input.config)) return { artifactRoot };
      return {
        artifactRoot,
        // An ordinary step: the world lands in <toyworld root>/<hash>/ (shared by every run), the step folder
        // of this run links to it; a resumed run reuses the step while the world it links to is intact.
        toyworldBuild: {
          step: 'toyworld-build',
          label: 'toy world',
          spec: { out_dir: path.join(artifactRoot, 'toyworld'), out_root: toyworldRoot, seed: input.config.toyworld.seed },
        },
      };
    },

    /** Resolve and check every input path of the run; a missing one fails for good, naming the field. */
    async resolveRunPaths(input: {
      config: CsrConfig;
      runKey: string;
      /** Out folder of the run's finished `toyworld-build` step. */
      toyworldBuildDir?: string;
      /** The world's folder itself (from a {@link PreparedRun} of an earlier version). */
      toyworldDir?: string;
      iteration0Key?: string;
    }): Promise<RunPaths> {
      const { config } = input;
      // The link resolved: the paths of the run name the cached world, whatever the step folder becomes.
      const world = input.toyworldDir ?? (input.toyworldBuildDir ? realWorld(input.toyworldBuildDir) : undefined);
      const fromWorld = (relative: string, field: string) => {
        if (!world) throw badInput(field, 'toyworld', 'a built toy world');
        return path.join(world, relative);
      };
      const baseModel = config.model.source === 'path' ? absolute('model.path', config.model.path) : fromWorld('lvlm', 'model.source');
      const clip = config.clip.source === 'path' ? absolute('clip.path', config.clip.path) : fromWorld('clip', 'clip.source');
      const promptsFile = config.prompts.source === 'file' ? absolute('prompts.file', config.prompts.file ?? '') : fromWorld('prompts.json', 'prompts.source');
      const imagesDir = config.prompts.source === 'file' ? absolute('prompts.images_dir', config.prompts.images_dir ?? '') : fromWorld('images', 'prompts.source');
      const checks: [string, string, 'model' | 'file' | 'dir'][] = [
        ['model.path', baseModel, 'model'],
        ['clip.path', clip, 'model'],
        ['prompts.file', promptsFile, 'file'],
        ['prompts.images_dir', imagesDir, 'dir'],
      ];
      for (const [field, where, kind] of checks) {
        if (kind === 'model' && !fs.existsSync(path.join(where, 'config.json')))
          throw badInput(field, where, 'a saved model folder (with config.json) on this host');
        if (kind === 'file' && !fs.statSync(where, { throwIfNoEntry: false })?.isFile())
          throw badInput(field, where, 'an existing prompt file');
        if (kind === 'dir' && !fs.statSync(where, { throwIfNoEntry: false })?.isDirectory())
          throw badInput(field, where, 'an existing image folder');
      }
      const groundTruth = world ? path.join(world, 'scenes.jsonl') : undefined;
      return {
        artifactRoot: underRoot(env.artifactsDir, input.runKey, 'runKey'),
        baseModel,
        clip,
        promptsFile,
        imagesDir,
        ...(groundTruth && fs.existsSync(groundTruth) ? { groundTruth } : {}),
        ...(world ? { toyworldDir: world } : {}),
        ...(input.iteration0Key ? { iteration0Root: underRoot(env.artifactsDir, input.iteration0Key, 'iteration0Key') } : {}),
      };
    },

    /** Write an iteration's prompt sample; the same inputs always give the same file (a retry rewrites it identically). */
    async samplePrompts(input: { source: string; target: string; limit: number; seed: number }): Promise<{ count: number; sha256: string }> {
      let prompts: unknown;
      try {
        prompts = JSON.parse(fs.readFileSync(input.source, 'utf8'));
      } catch (error) {
        throw ApplicationFailure.nonRetryable(`prompts file ${input.source}: ${(error as Error).message}`, 'ConfigError');
      }
      if (!Array.isArray(prompts) || prompts.length === 0) {
        throw ApplicationFailure.nonRetryable(`prompts file ${input.source}: expected a non-empty JSON list of {id, image, input}`, 'ConfigError');
      }
      const sample = seededSample(prompts, input.limit, input.seed);
      const text = JSON.stringify(sample);
      writeFileAtomic(input.target, text);
      return { count: sample.length, sha256: crypto.createHash('sha256').update(text).digest('hex') };
    },

    /** `<benchmark>/<metric>` -> value, from each finished evaluate step's metrics.json (numbers only). */
    async readEvaluation(input: { outDirs: { benchmark: string; outDir: string }[] }): Promise<Record<string, number>> {
      const metrics: Record<string, number> = {};
      for (const { benchmark, outDir } of input.outDirs) {
        const file = path.join(outDir, 'metrics.json');
        const values = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
        for (const [name, value] of Object.entries(values)) {
          if (typeof value === 'number' && Number.isFinite(value)) metrics[`${benchmark}/${name}`] = value;
        }
      }
      return metrics;
    },
  };
}
