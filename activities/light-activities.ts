/**
 * The light activities the CPU worker registers beside the compute-step activity (run setup, prompt
 * sampling, evaluation reading, MLflow bookkeeping of runs and sweeps), and the one type that names
 * every activity the workflows call, for `proxyActivities<WorkflowActivities>()` (imported as a type only).
 */
import * as path from 'node:path';
import type { CsrEnv } from '../src/env';
import { MlflowClient, ResilientTracker } from '../src/mlflow';
import type { Activities } from './create-activities';
import type { ForkServer } from './fork-server';
import { createRunSetupActivities } from './run-setup';
import { createSweepTrackingActivities } from './sweep-tracking';
import { createTrackingActivities } from './tracking';

/** What the light activities get from their worker. */
export interface LightActivityDeps {
  /** The CPU worker's warm (light) compute process: the headline plot is forked there; without it, spawned. */
  forkServer?: ForkServer;
}

/** Build the light activities of one CPU worker. */
export function createLightActivities(env: CsrEnv, deps: LightActivityDeps = {}) {
  // One tracker per worker: two would both load the shared spool folder and deliver its writes twice.
  const tracker = new ResilientTracker({
    client: new MlflowClient({ trackingUri: env.mlflowUri }),
    spoolDir: path.join(env.home, 'spool', 'mlflow'),
  });
  return { ...createRunSetupActivities(env), ...createTrackingActivities(env, tracker, deps.forkServer), ...createSweepTrackingActivities(env, tracker) };
}

/** Every activity a CSR workflow may call, whichever worker runs it. */
export type WorkflowActivities = Activities & ReturnType<typeof createLightActivities>;
