/**
 * The one-paragraph description a run's MLflow parent run carries (`mlflow.note.content`, shown as the
 * run's Description): what the run is, at a glance, for someone who opens it in the UI.
 */
import type { CsrConfig } from '../config/schema';

/** What the run does and how to read it: iterations, steps, benchmarks, the objective and its direction. */
export function runDescription(config: CsrConfig, runKey: string): string {
  const benchmarks = config.evaluate.benchmarks.map((benchmark) => benchmark.name).join(', ');
  const objective = config.evaluate.objective
    ? `Objective: ${config.evaluate.objective} (${config.evaluate.objective_direction === 'maximize' ? 'higher' : 'lower'} is better).`
    : 'No objective set.';
  return [
    `CSR run of ${config.name}: ${config.iterations} iterations of generate -> reward -> curate -> DPO -> evaluate,`,
    `evaluated on ${benchmarks}. ${objective}`,
    `Iteration 0 is the starting model; the eval/... charts are by iteration (their step).`,
    `Run key ${runKey}; one nested run per iteration.`,
  ].join(' ');
}
