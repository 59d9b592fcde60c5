/**
 * Every numeric bound of the config schema, derived from its JSON Schema export, as the Python steps
 * read them (`compute/csr_compute/config_bounds.json`): one definition of each limit, in zod.
 * `scripts/export-config-bounds.ts` writes the file; a test fails when it is stale.
 */
import { z } from 'zod';
import { rawConfigSchema } from './schema';

/** The limits of one numeric field; exclusive bounds as JSON Schema names them. */
export interface FieldBounds {
  type: 'integer' | 'number';
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
}

type JsonSchema = {
  type?: string;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
} & Omit<FieldBounds, 'type'>;

const KEYS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const;

function collect(schema: JsonSchema, path: string, out: Record<string, FieldBounds>): void {
  for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) collect(branch, path, out);
  if (schema.type === 'integer' || schema.type === 'number') {
    const bounds: FieldBounds = { type: schema.type };
    // zod's int() carries the safe-integer range as its maximum: no limit of ours.
    for (const key of KEYS) if (schema[key] !== undefined && Math.abs(schema[key]) < Number.MAX_SAFE_INTEGER) bounds[key] = schema[key];
    out[path] = bounds;
  }
  for (const [name, child] of Object.entries(schema.properties ?? {})) collect(child, path ? `${path}.${name}` : name, out);
  if (schema.items) collect(schema.items, `${path}[]`, out);
}

/** Dotted config path (`dpo.beta`, `evaluate.benchmarks[].limit`) -> its bounds, sorted by path. */
export function configBounds(): Record<string, FieldBounds> {
  const out: Record<string, FieldBounds> = {};
  collect(z.toJSONSchema(rawConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema, '', out);
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** The JSON file's text. */
export function configBoundsJson(): string {
  return `${JSON.stringify({ _comment: 'Generated from src/config/schema.ts by scripts/export-config-bounds.ts; do not edit.', bounds: configBounds() }, null, 2)}\n`;
}
