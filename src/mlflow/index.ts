/**
 * A small typed client for the MLflow tracking server's REST API, plus a resilient layer that never
 * lets a logging outage fail a pipeline step.
 *
 * Hand-written because nothing on npm fits: there is no maintained JavaScript MLflow client (the
 * `mlflow` package, 2.0.7, prints every request body to stdout and is unmaintained), and the
 * project needs idempotent writes, MLflow's batch limits, the artifact proxy and a spool for outages.
 */
export * from './artifact-path';
export * from './batch';
export * from './client';
export * from './errors';
export * from './filter';
export * from './http';
export * from './retry';
export * from './schemas';
export * from './resilient-tracker';
export * from './spool';
