/** `csr score BENCHMARK --data PATH --answers FILE [...]`: the official metric of one answer file. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { csrEnv } from '../../src/env';
import { runPython } from './python-step';

/** What `csr score` takes; each maps to the flag of the same name of `python -m csr_compute.evaluation.score`. */
export interface ScoreOptions {
  data?: string;
  answers: string;
  json?: boolean;
  split?: string;
  /** @default 0 (all questions) */
  limit?: number;
  /** `KEY=VALUE` benchmark fields. @default [] */
  option?: string[];
  judgeUrl?: string;
  judgeModel?: string;
  /** The name (never the value) of a variable listed in CSR_JUDGE_KEY_ENVS; the scorer checks the list. */
  judgeApiKeyEnv?: string;
  /** JSON-lines file keeping the judge's replies, so scoring again asks nothing. */
  judgeCache?: string;
  /** `auto` (detected), `csr` (this project's question ids) or `llava` (LLaVA's eval scripts'). @default 'auto' */
  format?: string;
}

/** The scorer's argument list: the CLI passes every option through, and the Python side validates them all. */
export function scoreArgs(benchmark: string, options: ScoreOptions): string[] {
  const args = ['-m', 'csr_compute.evaluation.score', benchmark, '--answers', options.answers];
  if (options.data) args.push('--data', options.data);
  if (options.split) args.push('--split', options.split);
  if (options.limit) args.push('--limit', String(options.limit));
  for (const pair of options.option ?? []) args.push('--option', pair);
  if (options.judgeUrl) args.push('--judge-url', options.judgeUrl);
  if (options.judgeModel) args.push('--judge-model', options.judgeModel);
  if (options.judgeApiKeyEnv) args.push('--judge-api-key-env', options.judgeApiKeyEnv);
  if (options.judgeCache) args.push('--judge-cache', options.judgeCache);
  if (options.format) args.push('--format', options.format);
  if (options.json) args.push('--json');
  return args;
}

/**
 * The data folder of a toy benchmark (`toy_pope_dev` -> `benchmarks/pope_dev`) in the one built world
 * under `toyworldRoot`; undefined when there is none or several (the scorer then asks for --data).
 */
export function toyDataDir(benchmark: string, toyworldRoot: string): string | undefined {
  const toy = /^toy_(.+)$/.exec(benchmark);
  if (!toy) return undefined;
  const worlds = fs.existsSync(toyworldRoot) ? fs.readdirSync(toyworldRoot).filter((name) => !name.startsWith('.')) : [];
  const found = worlds
    .map((world) => path.join(toyworldRoot, world, 'benchmarks', toy[1] as string))
    .filter((dir) => fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory());
  return found.length === 1 ? found[0] : undefined;
}

export function scoreCommand(benchmark: string, options: ScoreOptions): Promise<number> {
  const data = options.data ?? toyDataDir(benchmark, csrEnv().toyworldRoot);
  return runPython(scoreArgs(benchmark, { ...options, ...(data ? { data } : {}) }));
}
