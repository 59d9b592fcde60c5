/**
 * Validating a config object, with no Node built-ins, so that workflow code (Temporal's sandbox) can
 * validate its input with the same schema and the same messages as the CLI: one line per bad field,
 * `path: expected ... (got value)`.
 */
import type { z } from 'zod';
import { rawConfigSchema, type CsrConfig } from './schema';

/** A config that cannot be used; `problems` holds one line per bad field. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * A value as one short, printable line. JSON alone would print `.inf` as `null`, and a string from a
 * binary file would put raw control bytes on the terminal; both are spelled out instead.
 */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number' && !Number.isFinite(value)) return Number.isNaN(value) ? 'NaN' : value > 0 ? 'infinity' : '-infinity';
  const shown = (JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)) ?? String(value))
    // JSON escapes C0 controls but not DEL, C1 controls or the replacement of undecodable bytes.
    .replace(/[\u007f-\u009f\ufffd\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return shown.length > 60 ? `${shown.slice(0, 57)}...` : shown;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value: unknown = root;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** One line per zod issue: `generate.num_beams: expected integer >= 2, got "five"`. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const where = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const full = where ? `${where}.${key}` : key;
        lines.push(`${full}: unknown field (got ${show(valueAt(input, [...issue.path, key]))}); check its spelling`);
      }
      continue;
    }
    const atPath = valueAt(input, issue.path);
    const got = atPath !== undefined ? atPath : 'input' in issue ? issue.input : undefined;
    const message = issue.message.startsWith('expected') ? issue.message : `expected ${issue.message}`;
    lines.push(`${where || '(top level)'}: ${message}, got ${show(got)}`);
  }
  return lines;
}

/**
 * Keys removed because they did nothing: each `dpo` one had a single allowed value, the fixed behaviour,
 * and `torch_threads` was read by no code (the worker sets a stand-in's threads). `value`: the one value
 * the key could hold; absent = any.
 */
const RETIRED: readonly { section?: string; key: string; value?: string; why: string }[] = [
  { section: 'dpo', key: 'reference', value: 'iteration_start', why: "the reference is always the iteration's starting model" },
  { section: 'dpo', key: 'policy_init', value: 'previous_merged', why: 'the policy always starts from the previous merged model' },
  { section: 'dpo', key: 'data', value: 'current_iteration', why: "DPO always trains on the iteration's own pairs" },
  { key: 'torch_threads', why: "a stand-in worker's threads are set by the worker (cores / stand-ins)" },
];

/**
 * The config without its retired keys, and one line per key dropped. `recorded` (the config of a run
 * started before the keys went): only keys holding their old value are dropped, silently, so that the
 * run can still be resumed; any other value is left for the schema to refuse as an unknown field.
 */
function withoutRetired(input: unknown, recorded: boolean): { config: unknown; problems: string[] } {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return { config: input, problems: [] };
  const config: Record<string, unknown> = { ...(input as Record<string, unknown>) };
  const problems: string[] = [];
  for (const { section, key, value, why } of RETIRED) {
    const holder = section === undefined ? config : config[section];
    if (holder === null || typeof holder !== 'object' || Array.isArray(holder) || !(key in holder)) continue;
    const { [key]: old, ...rest } = holder as Record<string, unknown>;
    if (recorded && value !== undefined && old !== value) continue;
    if (section === undefined) delete config[key];
    else config[section] = rest;
    if (!recorded) problems.push(`${section === undefined ? key : `${section}.${key}`}: removed (${why}), got ${show(old)}; delete the line`);
  }
  return { config, problems };
}

/**
 * Validate an already-parsed config object. `recorded`: the config of a run started earlier (a resume,
 * the workflow's own input), whose retired keys with their old value are dropped instead of refused.
 */
export function parseConfig(input: unknown, file = '<config>', options: { recorded?: boolean } = {}): CsrConfig {
  const { config, problems } = withoutRetired(input, options.recorded ?? false);
  const result = rawConfigSchema.safeParse(config, { reportInput: true });
  if (!result.success) throw new ConfigError(file, [...problems, ...describeIssues(result.error.issues, config)]);
  if (problems.length) throw new ConfigError(file, problems);
  return result.data;
}
