/**
 * The light activities the CPU worker registers beside the compute-step activity (run setup, prompt
 * sampling, evaluation reading, MLflow bookkeeping), and the one type that names every activity the
 * workflows call, for `proxyActivities<WorkflowActivities>()` (imported as a type only).
 */
import type { CsrEnv } from '../src/env';
import type { Activities } from './create-activities';
import { createRunSetupActivities } from './run-setup';
import { createTrackingActivities } from './tracking';

/** Build the light activities of one CPU worker. */
export function createLightActivities(env: CsrEnv) {
  return { ...createRunSetupActivities(env), ...createTrackingActivities(env) };
}

/** Every activity a CSR workflow may call, whichever worker runs it. */
export type WorkflowActivities = Activities & ReturnType<typeof createLightActivities>;
