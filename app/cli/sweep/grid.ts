/**
 * The grid of `csr sweep`: `--grid KEY=V1,V2` options parsed, expanded into cells (their Cartesian
 * product), and every cell's config validated through the config schema before anything starts. A
 * bad key or value is a {@link GridError}: one line per problem naming the key, the value and what
 * was expected.
 */
import { parse as parseYaml } from 'yaml';
import { ConfigError, parseConfig, type CsrConfig } from '../../../src/config';
import type { GridValue, SweepCell } from '../../../src/shared/sweep-types';

/** One `--grid` option. */
export interface GridAxis {
  /** Dotted config key, e.g. `reward.alpha`. */
  key: string;
  values: GridValue[];
}

/** A grid the config cannot take; `problems` holds one line per bad key or value. */
export class GridError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'GridError';
  }
}

/**
 * Keys a grid may not vary: `name` is the sweep's MLflow experiment (every cell must share it) and
 * `seed` is what `--seeds` sets.
 */
const RESERVED: Record<string, string> = {
  name: 'the sweep is one MLflow experiment named by the config; copy the config to sweep names',
  seed: 'seeds come from --seeds N',
};

const KEY = /^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\d+))*$/;

/** Parse one value as a YAML scalar (`0.5` -> 0.5, `true` -> true, `random` -> "random"). */
function scalar(key: string, text: string): GridValue {
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch {
    throw new GridError([`--grid ${key}: expected YAML scalar values, got ${JSON.stringify(text)}`]);
  }
  if (value !== null && typeof value === 'object') {
    throw new GridError([`--grid ${key}: expected scalar values (numbers, words, true/false), got ${JSON.stringify(text)}`]);
  }
  return value as GridValue;
}

/** `reward.alpha=0,0.5,1` -> `{key: 'reward.alpha', values: [0, 0.5, 1]}`. */
export function parseGridOption(option: string): GridAxis {
  const at = option.indexOf('=');
  const key = at < 0 ? option.trim() : option.slice(0, at).trim();
  if (at < 0 || !KEY.test(key)) {
    throw new GridError([`--grid ${JSON.stringify(option)}: expected KEY=V1,V2,... with a dotted config key such as reward.alpha`]);
  }
  const reserved = RESERVED[key];
  if (reserved) throw new GridError([`--grid ${key}: not a grid key (${reserved})`]);
  const texts = option.slice(at + 1).split(',').map((text) => text.trim());
  if (texts.some((text) => text === '')) {
    throw new GridError([`--grid ${key}: expected one or more comma-separated values, got ${JSON.stringify(option.slice(at + 1))}`]);
  }
  const values = texts.map((text) => scalar(key, text));
  const seen = new Set(values.map((value) => JSON.stringify(value)));
  if (seen.size !== values.length) throw new GridError([`--grid ${key}: a value is given twice in ${JSON.stringify(option.slice(at + 1))}`]);
  return { key, values };
}

/** Parse every `--grid` option; a key given twice is refused (its values would be ambiguous). */
export function parseGrid(options: readonly string[]): GridAxis[] {
  if (options.length === 0) throw new GridError(['--grid: expected at least one KEY=V1,V2,... option']);
  const axes = options.map(parseGridOption);
  const keys = axes.map((axis) => axis.key);
  for (const [index, key] of keys.entries()) {
    if (keys.indexOf(key) !== index) throw new GridError([`--grid ${key}: given twice; put all its values in one option`]);
    const nested = keys.find((other) => other !== key && other.startsWith(`${key}.`));
    if (nested) throw new GridError([`--grid ${key}: overlaps --grid ${nested}; vary one or the other`]);
  }
  return axes;
}

/** The cells of a grid: every combination, the first axis varying slowest. */
export function expandGrid(axes: readonly GridAxis[]): SweepCell[] {
  let combos: Record<string, GridValue>[] = [{}];
  for (const axis of axes) combos = combos.flatMap((combo) => axis.values.map((value) => ({ ...combo, [axis.key]: value })));
  return combos.map((params, index) => ({ index, params }));
}

/** A deep copy of `raw` with `value` at the dotted `key` (missing sections are created). */
export function withValue(raw: unknown, key: string, value: GridValue): Record<string, unknown> {
  const root = structuredClone(raw ?? {}) as Record<string, unknown>;
  const parts = key.split('.');
  let node: Record<string, unknown> = root;
  for (const [depth, part] of parts.entries()) {
    if (depth === parts.length - 1) {
      node[part] = value;
      break;
    }
    const next = node[part];
    if (next === undefined) node[part] = {};
    else if (next === null || typeof next !== 'object') {
      throw new GridError([`--grid ${key}: ${parts.slice(0, depth + 1).join('.')} is ${JSON.stringify(next)} in the config, not a section`]);
    }
    node = node[part] as Record<string, unknown>;
  }
  return root;
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = Math.min(above + 1, (row[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

/**
 * The line for a grid key the schema does not know (`field` is its first unknown part): the fields of
 * that section as the resolved base config has them, and the closest one.
 */
function unknownKeyLine(key: string, field: string, value: GridValue, base: CsrConfig): string {
  const parts = field.split('.');
  const name = parts[parts.length - 1] as string;
  let section: unknown = base;
  for (const part of parts.slice(0, -1)) section = (section as Record<string, unknown> | undefined)?.[part];
  const known = section && typeof section === 'object' && !Array.isArray(section) ? Object.keys(section) : [];
  const closest = [...known].sort((a, b) => distance(name, a) - distance(name, b))[0];
  const where = parts.length > 1 ? parts.slice(0, -1).join('.') : 'the config';
  const guess = closest && distance(name, closest) <= 3 ? [...parts.slice(0, -1), closest, ...key.split('.').slice(parts.length)].join('.') : undefined;
  return `--grid ${key}=${JSON.stringify(value)}: unknown config key (expected a field of ${where}: ${known.join(', ')})${guess ? `; did you mean ${guess}?` : ''}`;
}

/**
 * Apply a cell's values to the raw config and validate the result. Problems are reworded for the
 * grid (the config file itself is valid by the time this runs, so each one comes from a grid value).
 */
export function cellConfig(raw: unknown, cell: SweepCell, base: CsrConfig, file: string): CsrConfig {
  let edited = raw;
  for (const [key, value] of Object.entries(cell.params)) edited = withValue(edited, key, value);
  try {
    return parseConfig(edited, file);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new GridError(
      error.problems.map((line) => {
        const field = /^(\S+): unknown field/.exec(line)?.[1];
        const key = field && Object.keys(cell.params).find((k) => k === field || k.startsWith(`${field}.`));
        if (field && key) return unknownKeyLine(key, field, cell.params[key] as GridValue, base);
        return `--grid ${line}`;
      }),
    );
  }
}

/** Every cell's validated config; all problems of all cells in one error (each line once). */
export function cellConfigs(raw: unknown, cells: readonly SweepCell[], base: CsrConfig, file: string): CsrConfig[] {
  const configs: CsrConfig[] = [];
  const problems: string[] = [];
  for (const cell of cells) {
    try {
      configs.push(cellConfig(raw, cell, base, file));
    } catch (error) {
      if (!(error instanceof GridError)) throw error;
      for (const line of error.problems) if (!problems.includes(line)) problems.push(line);
    }
  }
  if (problems.length > 0) throw new GridError(problems);
  return configs;
}
