/**
 * Field builders whose every error reads "expected <what>", so that a refused config names, for
 * each bad field, what was expected in words a person writes (`integer >= 2`, `one of rank, score`).
 */
import { z } from 'zod';
import { durationMs } from '../shared/duration';

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

/**
 * A finite number with an exclusive bound on either side: `above(0)` is `> 0` (a DPO beta of 0 trains
 * nothing); `above(0, 1)` is `0 < x <= 1`.
 */
export function above(min: number, max?: number) {
  const what = max === undefined ? `number > ${min}` : `number > ${min} and <= ${max}`;
  let schema = z.number(expected(what)).gt(min, expected(what));
  if (max !== undefined) schema = schema.max(max, expected(what));
  return schema;
}

/** A number in [0, 1): a share of something that must leave a rest (warm-up of 1 = no training at full rate). */
export function fraction() {
  const what = 'number >= 0 and < 1';
  return z.number(expected(what)).min(0, expected(what)).lt(1, expected(what));
}

/** A name that becomes part of a file path or id: letters, digits, `-`, `_` (no `/`, no `..`). */
export function safeName(what: string) {
  const message = expected(`${what} of letters, digits, - and _`);
  return z.string(message).regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/, message);
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

/**
 * A duration written as `30s`, `5m`, `2h` or `1d`, longer than zero: a 0 s timeout fails every attempt
 * at once and a 0 s retry interval retries in a hot loop.
 */
export function duration() {
  const what = expected('duration > 0 like 30s, 5m, 2h');
  return z
    .string(what)
    .regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, what)
    .refine((value) => durationMs(value) > 0, what);
}

export { durationMs };
