/**
 * The run config: what people write in `configs/*.yaml` (strict: unknown keys are errors), every field
 * and default documented here. The Python side reads the same file and restates the defaults in its
 * dataclasses (`compute/csr_compute/config.py` and each step's params); compute/tests/test_config_mirror.py
 * loads every file in `configs/` through both and fails when they resolve differently.
 */
import { z } from 'zod';
import { above, bool, duration, fraction, int, num, oneOf, safeName, text } from './fields';
import { durationMs } from '../shared/duration';

/**
 * Largest seed: numpy and torch take seeds below 2^32, and each iteration's steps add the iteration
 * number (at most 100) to the config's seed.
 */
export const MAX_SEED = 2 ** 32 - 1 - 100;

/** Most shards or GPUs of one step: each is one activity and one process; far more wedges the task queue. */
export const MAX_SHARDS = 1024;

/** Where a model comes from: the toy world's trained model, or a local Hugging Face folder. */
const modelSource = z.discriminatedUnion(
  'source',
  [
    z.object({ source: z.literal('toyworld') }).strict(),
    z.object({ source: z.literal('path'), path: text('path of a saved model folder') }).strict(),
  ],
  { error: () => 'expected source: toyworld, or source: path with a path' },
);

const toyworld = z
  .object({
    /** Seed of the synthetic world. @default 0 */
    seed: int(0, MAX_SEED).default(0),
  })
  .strict();

const prompts = z
  .object({
    /** `toyworld`: the world's prompt set; `file`: a CSR prompt file (csr-prompts-12k.json format). */
    source: oneOf(['toyworld', 'file']).default('toyworld'),
    /** Prompt file (source: file). */
    file: text('path of a prompt JSON file').optional(),
    /** Folder of the prompt images (source: file), e.g. COCO train2014. */
    images_dir: text('path of an image folder').optional(),
    /** Prompts per iteration (0 = all). @default 0 */
    limit: int(0).default(0),
    /** `per-iteration`: a fresh seeded sample each iteration; `fixed`: the same prompts every time. */
    sample: oneOf(['per-iteration', 'fixed']).default('per-iteration'),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (value.source === 'file') {
      for (const key of ['file', 'images_dir'] as const) {
        if (!value[key]) ctx.addIssue({ code: 'custom', path: [key], message: 'expected a path when source is file' });
      }
    }
  });

const generate = z
  .object({
    /** Sentence-level beams kept per depth. @default 5 */
    num_beams: int(2).default(5),
    /** Token-level beams per node = candidate sentences per node. @default 5 */
    num_token_beams: int(1).default(5),
    /** Diverse beam search groups (must divide num_token_beams). @default 5 */
    num_beam_groups: int(1).default(5),
    /** Hamming diversity penalty between groups. @default 3.0 */
    diversity_penalty: num(0).default(3.0),
    /** Token limit of one sentence. @default 70 */
    max_new_tokens: int(1).default(70),
    /** Token limit of prompt + response. @default 1024 */
    max_length: int(16).default(1024),
    /** Best nodes kept per depth (reference code: num_beams/2 - 1). @default 1 */
    keep_top: int(0).default(1),
    /** Worst nodes kept per depth (reference code: num_beams/2). @default 2 */
    keep_bottom: int(0).default(2),
    /** Score that pruning sorts by: the model's own (reference code) or the calibrated reward (paper). */
    prune_by: oneOf(['self_reward', 'calibrated']).default('self_reward'),
    /** Nodes per forward pass. @default 32 */
    batch_size: int(1).default(32),
    /** Prompts whose trees grow together, so one forward pass holds nodes of several prompts. @default 8 */
    prompts_in_flight: int(1).default(8),
    /** The token that ends a sentence (LLaMA: "." = id 29889). @default "." */
    sentence_end: text('a sentence-ending token').default('.'),
    /**
     * Memory budget of one forward pass in KV tokens beyond the prompts (stored once per prompt): nodes x
     * response so far + nodes x num_token_beams x max_new_tokens. 0 = sized from free GPU memory and the
     * model's KV bytes per token (no limit on a CPU). @default 0
     */
    max_batch_tokens: int(0).default(0),
    /** Model dtype for generation: `auto` = the step's dtype (bf16 on a GPU that supports it, else fp32). @default auto */
    dtype: oneOf(['auto', 'float32', 'bfloat16', 'float16']).default('auto'),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (value.num_token_beams % value.num_beam_groups !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['num_beam_groups'],
        message: `expected a divisor of num_token_beams (${value.num_token_beams})`,
        input: value.num_beam_groups,
      });
    }
    if (value.keep_top + value.keep_bottom < 1) {
      ctx.addIssue({ code: 'custom', path: ['keep_bottom'], message: 'expected keep_top + keep_bottom >= 1' });
    }
    // Pruning keeps keep_top + keep_bottom of num_beams nodes: more than there are wedges the search.
    if (value.keep_top + value.keep_bottom > value.num_beams) {
      ctx.addIssue({
        code: 'custom',
        path: ['keep_bottom'],
        message: `expected keep_top + keep_bottom <= num_beams (${value.num_beams})`,
        input: value.keep_bottom,
      });
    }
  });

const reward = z
  .object({
    /**
     * `rank` (reference code: sibling ranks), `score` (paper as written: raw scores, CLIP dominates) or
     * `standardized` (the paper's weighted sum with each term z-scored among siblings). @default rank
     */
    calibration: oneOf(['rank', 'score', 'standardized']).default('rank'),
    /** Weight of the CLIP (visual) side. @default 0.9 */
    alpha: num(0, 1).default(0.9),
    /** Sentences per CLIP forward pass. @default 64 */
    batch_size: int(1).default(64),
  })
  .strict();

const curate = z
  .object({
    /** Drop pairs whose calibrated score gap is below this. @default 0 (off) */
    min_gap: num(0).default(0),
    /** Drop pairs whose chosen and rejected hold the same sentences in another order. @default false */
    drop_order_only: bool().default(false),
    /** Drop pairs whose chosen response names an object twice. @default false */
    drop_repeated_objects: bool().default(false),
    /** Path score divisor: sentences + 1 (`with_root`, reference code) or sentences. @default with_root */
    path_norm: oneOf(['with_root', 'sentences']).default('with_root'),
    /**
     * Value of a sentence that repeats an earlier sentence of its response: its own score (`score`, the
     * paper's reward) or the tree's worst sentence value (`worst`: padding with repeats loses). @default score
     */
    repeated_sentences: oneOf(['score', 'worst']).default('score'),
    /**
     * With `repeated_sentences: worst`, a sentence whose CLIP text embedding has at least this cosine
     * similarity to an earlier sentence of its response is a repeat too: the same thing in other words
     * ("the cap is small . the hat is small ."). 1 = the same words only. In the toy world 0.9 cut
     * CHAIR_I but not the repeats in captions, and lost recall (docs/toy-results.md, round 8). @default 1
     */
    repeat_similarity: num(0, 1).default(1),
    /** Pairs copied to pairs_sample.jsonl (and MLflow). @default 20 */
    sample_size: int(0).default(20),
    /** `calibrated` (CSR) or a control on the same prompts: `swapped` (chosen and rejected exchanged), `random`. */
    pairing: oneOf(['calibrated', 'swapped', 'random']).default('calibrated'),
  })
  .strict();

/**
 * DPO on the iteration's own curated pairs. Fixed, not configurable (CSR): the policy starts from the
 * iteration's starting model (the previous iteration's merged model), and the frozen reference is that
 * same model (the policy with its LoRA adapters disabled).
 */
const dpo = z
  .object({
    /** Strength of the KL constraint; 0 makes the DPO loss constant (nothing is learned). @default 0.1 */
    beta: above(0).default(0.1),
    /** `sigmoid` (standard DPO), or the control `nll_only`: fine-tuning on chosen responses alone. */
    loss: oneOf(['sigmoid', 'nll_only']).default('sigmoid'),
    learning_rate: above(0).default(1e-7),
    /** Learning rate of the multimodal projector (LLaVA trains it beside the LoRA adapters). */
    projector_learning_rate: num(0).optional(),
    epochs: above(0).default(1),
    batch_size: int(1).default(1),
    gradient_accumulation_steps: int(1).default(1),
    lr_scheduler: oneOf(['cosine', 'linear', 'constant']).default('cosine'),
    /** Share of the steps spent warming up; below 1, or the run never trains at its learning rate. */
    warmup_ratio: fraction().default(0.03),
    lora_r: int(1).default(128),
    lora_alpha: int(1).default(256),
    lora_dropout: fraction().default(0.05),
    /** Weight of an NLL term on chosen responses (TRL rpo_alpha); null = off. */
    rpo_alpha: num(0).nullable().default(null),
    /** Save a resumable checkpoint every K optimiser steps. */
    checkpoint_every: int(1).default(100),
    weight_decay: num(0).default(0),
    /** Checkpoints kept (the latest). */
    save_total_limit: int(1).default(1),
    /** Token limit of prompt (image tokens included) + response. */
    max_length: int(8).default(1024),
    /** Stop after this many optimiser steps; -1 = run the epochs. */
    max_steps: int(-1).default(-1),
    gradient_checkpointing: bool().default(false),
    /** Training pairs on which the DPO loss and margin are measured before and after training (0 = skip). */
    eval_pairs: int(0).default(32),
  })
  .strict()
  .superRefine((value, ctx) => {
    // 0 optimiser steps trains nothing and merges an untouched adapter: a run that only looks done.
    if (value.max_steps === 0) {
      ctx.addIssue({ code: 'custom', path: ['max_steps'], message: 'expected -1 (run the epochs) or a positive step count', input: 0 });
    }
  });

/** The entry's own fields: an option of the same name would be ambiguous in the evaluate spec. */
const BENCHMARK_ENTRY_FIELDS = new Set(['name', 'data_dir', 'image_dir', 'limit', 'split']);

const benchmark = z
  .object({
    /** A registered benchmark; also the name of its output folder, hence letters, digits, - and _ only. */
    name: safeName('benchmark name'),
    /** Folder of the benchmark's official release (toy benchmarks: the toy world's). */
    data_dir: text('path of a benchmark data folder').optional(),
    /** Folder of the benchmark's images when they are not inside data_dir (e.g. COCO val2014 for POPE). */
    image_dir: text('path of an image folder').optional(),
    /** Questions to use (0 = all). */
    limit: int(0).default(0),
    /** A benchmark's split where it has several (e.g. POPE's `random`); unset = all, or its default. */
    split: text('a split name').optional(),
    /**
     * The benchmark's own fields (e.g. MME `parse: lmms_eval`, MMBench `missing: wrong`; docs/benchmarks.md),
     * passed to its evaluate step, which checks the names and values when it starts.
     */
    options: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()], { error: () => 'expected a string, number or true/false' }))
      .superRefine((options, ctx) => {
        for (const key of Object.keys(options)) {
          if (BENCHMARK_ENTRY_FIELDS.has(key)) {
            ctx.addIssue({ code: 'custom', path: [key], input: options[key], message: 'expected a benchmark-specific field (this one is a field of the entry itself)' });
          } else if (!/^[a-z][a-z0-9_]*$/.test(key)) {
            ctx.addIssue({ code: 'custom', path: [key], input: options[key], message: 'expected an option name of lower-case letters, digits and _' });
          }
        }
      })
      .optional(),
  })
  .strict();

const evaluate = z
  .object({
    benchmarks: z
      .array(benchmark, { error: () => 'expected a list of benchmarks' })
      // Each benchmark writes to a folder named after it: two entries of one name would be two writers
      // of one folder, each overwriting the other's answers.
      .superRefine((list, ctx) => {
        const seen = new Set<string>();
        list.forEach((entry, index) => {
          if (seen.has(entry.name)) {
            ctx.addIssue({ code: 'custom', path: [index, 'name'], message: 'expected a benchmark name not already listed', input: entry.name });
          }
          seen.add(entry.name);
        });
      })
      .default([]),
    /** `<benchmark>/<metric>` that the iteration gate compares. */
    objective: text('<benchmark>/<metric>').optional(),
    objective_direction: oneOf(['minimize', 'maximize']).default('minimize'),
    /** Stop the run when an iteration does not improve the objective. @default false */
    stop_when_worse: bool().default(false),
    batch_size: int(1).default(16),
    /** Token limit of an answer; unset = each benchmark's LLaVA-1.5 default (e.g. 1024 for MM-Vet). */
    max_new_tokens: int(1).optional(),
    /** OpenAI-compatible judge for MM-Vet and LLaVA-Bench; absent = those two are skipped. */
    judge: z
      .object({
        /** The endpoint; http(s) only, since the worker sends the API key there. */
        url: z
          .string({ error: () => 'expected an http(s) URL' })
          .regex(/^https?:\/\/[^\s/]+/, { error: () => 'expected an http(s) URL' }),
        model: text('model name'),
        /**
         * Environment variable of the worker holding the API key. It must also be listed in the
         * operator's `CSR_JUDGE_KEY_ENVS` on the worker and where the run is started (see `judgeKeyProblem`).
         */
        api_key_env: z
          .string({ error: () => 'expected an environment variable name' })
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: () => 'expected an environment variable name' })
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** Milliseconds of a duration for a rule between fields; NaN (every comparison false) when the field itself is bad, already reported. */
function validMs(value: string): number {
  try {
    const ms = durationMs(value);
    return ms > 0 ? ms : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

const retry = z
  .object({
    maximum_attempts: int(1, 100).default(5),
    initial_interval: duration().default('5s'),
    backoff_coefficient: num(1, 100).default(2),
    maximum_interval: duration().default('5m'),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (validMs(value.maximum_interval) < validMs(value.initial_interval)) {
      ctx.addIssue({
        code: 'custom',
        path: ['maximum_interval'],
        message: `expected a duration >= initial_interval (${value.initial_interval})`,
        input: value.maximum_interval,
      });
    }
  });

const activityTimeouts = z
  .object({
    /** Longest a single attempt of a GPU step may run. */
    start_to_close: duration().default('24h'),
    /** A step whose heartbeats stop for this long is presumed dead and retried. */
    heartbeat_timeout: duration().default('2m'),
    /** Interval of the activity's own heartbeat timer (well under heartbeat_timeout). */
    heartbeat_every: duration().default('10s'),
    /**
     * A step that prints no progress for this long is presumed hung: it is killed and retried. Steps
     * report progress per item and every few seconds while loading a model or saving a checkpoint.
     * @default 30m
     */
    stall_timeout: duration().default('30m'),
    retry: retry.default(retry.parse({})),
  })
  .strict()
  .superRefine((value, ctx) => {
    // A heartbeat timer as slow as the timeout lets every step time out between two beats.
    if (validMs(value.heartbeat_every) >= validMs(value.heartbeat_timeout)) {
      ctx.addIssue({
        code: 'custom',
        path: ['heartbeat_every'],
        message: `expected a duration < heartbeat_timeout (${value.heartbeat_timeout})`,
        input: value.heartbeat_every,
      });
    }
    if (validMs(value.heartbeat_timeout) > validMs(value.start_to_close)) {
      ctx.addIssue({
        code: 'custom',
        path: ['heartbeat_timeout'],
        message: `expected a duration <= start_to_close (${value.start_to_close})`,
        input: value.heartbeat_timeout,
      });
    }
  });

const workers = z
  .object({
    /** Shards that generate, reward and evaluate fan out over (usually the number of GPUs). */
    gpu_shards: int(1, MAX_SHARDS).default(1),
    /** GPUs one DPO step claims together on one host. */
    dpo_gpus: int(1, MAX_SHARDS).default(1),
  })
  .strict();

/** The config file as written. */
export const rawConfigSchema = z
  .object({
    /** Name of the run config: the MLflow experiment and part of workflow ids. */
    name: z
      .string({ error: () => 'expected a name of letters, digits, - and _' })
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, { error: () => 'expected a name of letters, digits, - and _' }),
    iterations: int(1, 100),
    seed: int(0, MAX_SEED).default(0),
    model: modelSource,
    clip: modelSource,
    toyworld: toyworld.default(toyworld.parse({})),
    prompts: prompts.default(prompts.parse({})),
    generate: generate.default(generate.parse({})),
    reward: reward.default(reward.parse({})),
    curate: curate.default(curate.parse({})),
    dpo: dpo.default(dpo.parse({})),
    evaluate: evaluate.default(evaluate.parse({})),
    workers: workers.default(workers.parse({})),
    activities: activityTimeouts.default(activityTimeouts.parse({})),
  })
  .strict();

/** A config with every default filled in: what the code uses. */
export type CsrConfig = z.infer<typeof rawConfigSchema>;
export type ModelSource = z.infer<typeof modelSource>;
export type BenchmarkSpec = z.infer<typeof benchmark>;
