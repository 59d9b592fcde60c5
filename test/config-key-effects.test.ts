/**
 * Every leaf key of the config schema changes what a run does: for each one, the toy config and a copy
 * with that key changed give different step specs, workflow options or run setup. The key list comes
 * from the schema itself, so a new key without an effect (or without a row here) fails this test.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../src/config';
import { JUDGE_KEY_ENVS } from '../src/config/judge-key';
import { rawConfigSchema, type CsrConfig } from '../src/config/schema';
import type { CsrEnv } from '../src/env';
import { continuesAfter, improvedObjective, iterationPhases, iterationStartModel, promptSampleInput } from '../src/shared/plan';
import { runDescription } from '../src/shared/run-description';
import { createRunSetupActivities } from '../activities/run-setup';
import { computeActivityOptions, stepTimers } from '../workflows/activity-options';

type Patch = Record<string, unknown>;
/** A key's other valid value; `base` sets other keys in both configs (e.g. a source the key depends on), `also` in the changed one. */
interface Change {
  to: unknown;
  base?: Patch;
  also?: Patch;
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-key-effects-'));
const dir = (...parts: string[]) => {
  const folder = path.join(root, ...parts);
  fs.mkdirSync(folder, { recursive: true });
  return folder;
};
const file = (name: string, text: string) => {
  fs.writeFileSync(path.join(root, name), text);
  return path.join(root, name);
};
// A toy world and local models/prompts as resolveRunPaths checks them.
const world = dir('world');
for (const model of ['lvlm', 'clip']) fs.writeFileSync(path.join(dir('world', model), 'config.json'), '{}');
fs.writeFileSync(path.join(world, 'prompts.json'), '[]');
fs.writeFileSync(path.join(world, 'scenes.jsonl'), '');
dir('world', 'images');
const [modelA, modelB] = ['model-a', 'model-b'].map((name) => {
  fs.writeFileSync(path.join(dir(name), 'config.json'), '{}');
  return path.join(root, name);
}) as [string, string];
const [promptsA, promptsB] = [file('prompts-a.json', '[]'), file('prompts-b.json', '[]')];
const [imagesA, imagesB] = [dir('images-a'), dir('images-b')];
const fileSource = { 'prompts.source': 'file', 'prompts.file': promptsA, 'prompts.images_dir': imagesA };
const judge = { 'evaluate.judge.url': 'http://judge-a', 'evaluate.judge.model': 'judge-model' };

const CHANGES: Record<string, Change> = {
  name: { to: 'other-name' },
  iterations: { to: 4 },
  seed: { to: 7 },
  'model.source': { to: 'path', also: { 'model.path': modelA } },
  'model.path': { base: { 'model.source': 'path', 'model.path': modelA }, to: modelB },
  'clip.source': { to: 'path', also: { 'clip.path': modelA } },
  'clip.path': { base: { 'clip.source': 'path', 'clip.path': modelA }, to: modelB },
  'toyworld.seed': { to: 3 },
  'prompts.source': { to: 'file', also: { 'prompts.file': promptsA, 'prompts.images_dir': imagesA } },
  'prompts.file': { base: fileSource, to: promptsB },
  'prompts.images_dir': { base: fileSource, to: imagesB },
  'prompts.limit': { to: 100 },
  'prompts.sample': { to: 'fixed' },
  'generate.num_beams': { to: 6 },
  'generate.num_token_beams': { to: 10 },
  'generate.num_beam_groups': { to: 1 },
  'generate.diversity_penalty': { to: 1 },
  'generate.max_new_tokens': { to: 50 },
  'generate.max_length': { to: 512 },
  'generate.keep_top': { to: 2 },
  'generate.keep_bottom': { to: 1 },
  'generate.prune_by': { to: 'self_reward' },
  'generate.batch_size': { to: 16 },
  'generate.prompts_in_flight': { to: 4 },
  'generate.sentence_end': { to: '!' },
  'generate.max_batch_tokens': { to: 1000 },
  'generate.dtype': { to: 'float32' },
  'reward.calibration': { to: 'rank' },
  'reward.alpha': { to: 0.5 },
  'reward.batch_size': { to: 32 },
  'curate.min_gap': { to: 0.1 },
  'curate.drop_order_only': { to: false },
  'curate.drop_repeated_objects': { to: false },
  'curate.path_norm': { to: 'sentences' },
  'curate.repeated_sentences': { to: 'score' },
  'curate.repeat_similarity': { to: 0.8, also: { 'curate.repeated_sentences': 'worst' } },
  'curate.sample_size': { to: 5 },
  'curate.pairing': { to: 'swapped' },
  'dpo.beta': { to: 0.2 },
  'dpo.loss': { to: 'nll_only' },
  'dpo.learning_rate': { to: 1e-4 },
  'dpo.projector_learning_rate': { to: 1e-5 },
  'dpo.epochs': { to: 2 },
  'dpo.batch_size': { to: 4 },
  'dpo.gradient_accumulation_steps': { to: 2 },
  'dpo.lr_scheduler': { to: 'linear' },
  'dpo.warmup_ratio': { to: 0.1 },
  'dpo.lora_r': { to: 8 },
  'dpo.lora_alpha': { to: 16 },
  'dpo.lora_dropout': { to: 0.1 },
  'dpo.rpo_alpha': { to: 0.5 },
  'dpo.checkpoint_every': { to: 5 },
  'dpo.weight_decay': { to: 0.01 },
  'dpo.save_total_limit': { to: 2 },
  'dpo.max_length': { to: 512 },
  'dpo.max_steps': { to: 10 },
  'dpo.gradient_checkpointing': { to: true },
  'dpo.eval_pairs': { to: 8 },
  'evaluate.benchmarks[].name': { to: 'toy_pope_extra' },
  'evaluate.benchmarks[].data_dir': { to: '/data/chair' },
  'evaluate.benchmarks[].image_dir': { to: '/data/images' },
  'evaluate.benchmarks[].limit': { to: 50 },
  'evaluate.benchmarks[].split': { to: 'random' },
  'evaluate.benchmarks[].options': { to: { parse: 'lmms_eval' } },
  'evaluate.objective': { to: 'toy_pope_dev/F1' },
  'evaluate.objective_direction': { to: 'maximize' },
  'evaluate.stop_when_worse': { to: true },
  'evaluate.batch_size': { to: 8 },
  'evaluate.max_new_tokens': { to: 64 },
  'evaluate.judge.url': { base: judge, to: 'http://judge-b' },
  'evaluate.judge.model': { base: judge, to: 'other-model' },
  'evaluate.judge.api_key_env': { base: judge, to: 'JUDGE_KEY_A' },
  'workers.gpu_shards': { to: 2 },
  'workers.dpo_gpus': { to: 2 },
  'activities.start_to_close': { to: '12h' },
  'activities.heartbeat_timeout': { to: '3m' },
  'activities.heartbeat_every': { to: '20s' },
  'activities.stall_timeout': { to: '1h' },
  'activities.retry.maximum_attempts': { to: 3 },
  'activities.retry.initial_interval': { to: '10s' },
  'activities.retry.backoff_coefficient': { to: 3 },
  'activities.retry.maximum_interval': { to: '10m' },
};

/** Every leaf key of a zod schema: objects and unions of objects are walked, a list's entries as `key[]`. */
function leafKeys(schema: unknown, prefix = ''): string[] {
  const def = (schema as { _zod: { def: Record<string, unknown> & { type: string } } })._zod.def;
  switch (def.type) {
    case 'default':
    case 'optional':
    case 'nullable':
      return leafKeys(def.innerType, prefix);
    case 'object':
      return Object.entries(def.shape as Record<string, unknown>).flatMap(([key, inner]) => leafKeys(inner, prefix ? `${prefix}.${key}` : key));
    case 'array':
      return leafKeys(def.element, `${prefix}[]`);
    case 'union': {
      const options = def.options as unknown[];
      const objects = options.filter((option) => (option as { _zod: { def: { type: string } } })._zod.def.type === 'object');
      if (objects.length !== options.length) return [prefix];
      return [...new Set(objects.flatMap((option) => leafKeys(option, prefix)))];
    }
    default:
      return [prefix];
  }
}

/** Set a dotted key in a raw config (`list[]` means its first entry), making the objects on the way. */
function set(raw: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node: Record<string, unknown> = raw;
  for (const part of parts.slice(0, -1)) {
    if (part.endsWith('[]')) {
      node = (node[part.slice(0, -2)] as Record<string, unknown>[])[0] as Record<string, unknown>;
    } else {
      node[part] ??= {};
      node = node[part] as Record<string, unknown>;
    }
  }
  node[parts[parts.length - 1] as string] = value;
}

const toy = parseYaml(fs.readFileSync(path.join(__dirname, '..', 'configs', 'toy.yaml'), 'utf8')) as Record<string, unknown>;

function configWith(...patches: Patch[]): CsrConfig {
  const raw = structuredClone(toy);
  for (const patch of patches) for (const [key, value] of Object.entries(patch)) set(raw, key, value);
  return parseConfig(raw);
}

const env = { artifactsDir: dir('artifacts'), toyworldRoot: dir('toyworlds') } as CsrEnv;
const setup = createRunSetupActivities(env);
process.env[JUDGE_KEY_ENVS] = 'JUDGE_KEY_A';

/** What a config decides before and while a run goes: the run's setup and paths, every step's spec, the options the workflow gives its activities, its gate and description. */
async function effects(config: CsrConfig, runKey: string) {
  const prepared = await setup.prepareRun({ config, runKey, configHash: 'hash' });
  const paths = await setup.resolveRunPaths({ config, runKey, toyworldDir: world });
  return {
    prepared,
    paths,
    phases: [0, 1, 2].map((iteration) => iterationPhases(config, paths, iteration, iterationStartModel(paths, iteration))),
    promptSample: promptSampleInput(config, paths, 1),
    computeOptions: computeActivityOptions(config, 'queue'),
    stepTimers: stepTimers(config),
    gate: [improvedObjective(config, 1, 2), improvedObjective(config, 2, 1)],
    continuesWhenWorse: continuesAfter(config, false),
    description: runDescription(config, runKey),
  };
}

test('the table names every key of the schema, and only those', (t) => {
  const keys = leafKeys(rawConfigSchema);
  t.deepEqual(
    keys.filter((key) => !(key in CHANGES)),
    [],
    'schema keys with no row here: add one whose change shows (or remove the key if nothing reads it)',
  );
  t.deepEqual(
    Object.keys(CHANGES).filter((key) => !keys.includes(key)),
    [],
    'rows for keys the schema no longer has',
  );
});

Object.entries(CHANGES).forEach(([key, change], index) => {
  test(`changing ${key} changes what the run does`, async (t) => {
    const runKey = `key-${index}`;
    const before = configWith(change.base ?? {});
    const after = configWith(change.base ?? {}, change.also ?? {}, { [key]: change.to });
    t.notDeepEqual(before, after, `${key}: the changed value did not reach the config`);
    const [a, b] = [await effects(before, runKey), await effects(after, runKey)];
    t.false(isDeepStrictEqual(a, b), `${key}: changing it to ${JSON.stringify(change.to)} changed no spec, option or setup (a dead key)`);
  });
});

test.after.always(() => fs.rmSync(root, { recursive: true, force: true }));
