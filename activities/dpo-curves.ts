/**
 * The DPO step's training curves as MLflow points, read from its `metrics.jsonl`: one record per
 * logged optimizer step, each with `time_ms`, fixed when the step wrote it. The step never talks to
 * MLflow; the tracker delivers these points through its spool after the step, and a delivery that is
 * repeated (a retried activity, a partial batch before an outage) sends the same points again, which
 * MLflow stores once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** One metric point of a curve. */
export interface CurvePoint {
  key: string;
  value: number;
  step: number;
  timestamp: number;
}

/**
 * Every numeric value of every complete record of `<dpoDir>/metrics.jsonl`, as `dpo/<name>` points,
 * one per name and step: the training record and the evaluation record of the last step both carry
 * `epoch`, and a second point at that step would be a duplicate in the curve (the first one is kept).
 */
export function dpoCurvePoints(dpoDir: string): CurvePoint[] {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dpoDir, 'metrics.jsonl'), 'utf8');
  } catch {
    return [];
  }
  const points: CurvePoint[] = [];
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // blank, or torn by a kill: the step's own resume dropped it too
    }
    const { step, time_ms: timestamp } = record;
    // A record without time_ms was written before curves had fixed timestamps: sending it would add a second point.
    if (typeof step !== 'number' || typeof timestamp !== 'number') continue;
    for (const [name, value] of Object.entries(record)) {
      if (name === 'step' || name === 'time_ms' || typeof value !== 'number' || !Number.isFinite(value)) continue;
      if (seen.has(`${name}@${step}`)) continue;
      seen.add(`${name}@${step}`);
      points.push({ key: `dpo/${name}`, value, step, timestamp });
    }
  }
  return points;
}
