/**
 * Reading and validating a config file, once, at the boundary: every bad field is reported in one
 * message, one line per field, `path: expected ... (got value)`, before anything starts.
 */
import * as fs from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
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

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const shown = JSON.stringify(value);
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

/** Validate an already-parsed config object. */
export function parseConfig(input: unknown, file = '<config>'): CsrConfig {
  const result = rawConfigSchema.safeParse(input, { reportInput: true });
  if (!result.success) throw new ConfigError(file, describeIssues(result.error.issues, input));
  return result.data;
}

/** Read, parse and validate a YAML config file. */
export function loadConfig(file: string): CsrConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [`cannot read the file: ${(error as Error).message}`]);
  }
  let input: unknown;
  try {
    input = parseYaml(text);
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    throw new ConfigError(file, [`not valid YAML${where}: ${(error as Error).message.split('\n')[0]}`]);
  }
  return parseConfig(input, file);
}
