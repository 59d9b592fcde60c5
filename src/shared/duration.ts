/** Durations as people write them in configs (`30s`, `5m`, `2h`); pure, so workflow code may use it. */

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Milliseconds of `30s`, `5m`, `2h`, `1d` or `250ms`. */
export function durationMs(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value);
  if (!match) throw new TypeError(`expected a duration like 30s, 5m, 2h, got ${JSON.stringify(value)}`);
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}
