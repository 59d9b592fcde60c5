/**
 * Field builders whose every error reads "expected <what>", so that a refused config names, for
 * each bad field, what was expected in words a person writes (`integer >= 2`, `one of rank, score`).
 */
import { z } from 'zod';

const expected = (what: string) => ({ error: () => `expected ${what}` });

/** An integer in [min, max]. */
export function int(min: number, max?: number) {
  const what = max === undefined ? `integer >= ${min}` : `integer ${min}..${max}`;
  let schema = z.number(expected(what)).int(expected(what)).min(min, expected(what));
  if (max !== undefined) schema = schema.max(max, expected(what));
  return schema;
}

/** A finite number in [min, max] (either bound optional). */
export function num(min?: number, max?: number) {
  const what =
    min !== undefined && max !== undefined
      ? `number ${min}..${max}`
      : min !== undefined
        ? `number >= ${min}`
        : max !== undefined
          ? `number <= ${max}`
          : 'number';
  let schema = z.number(expected(what));
  if (min !== undefined) schema = schema.min(min, expected(what));
  if (max !== undefined) schema = schema.max(max, expected(what));
  return schema;
}

/** One of a fixed set of words. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, expected(`one of ${values.join(', ')}`));
}

/** A non-empty string. */
export function text(what = 'non-empty string') {
  return z.string(expected(what)).min(1, expected(what));
}

/** true or false. */
export function bool() {
  return z.boolean(expected('true or false'));
}

/** A duration written as `30s`, `5m`, `2h` or `1d`. */
export function duration() {
  return z.string(expected('duration like 30s, 5m, 2h')).regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, expected('duration like 30s, 5m, 2h'));
}

export { durationMs } from '../shared/duration';
