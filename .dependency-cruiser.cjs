/**
 * Import rules: the seams between folders that hold today (README "Seams we keep", issue 15).
 * Checked by test/import-rules.test.ts inside `npm test`, or by hand with `npm run lint:imports`.
 * Each rule is one seam; the test plants one violation of each in a temporary tree and expects it here.
 *
 * Not enforced yet, because they do not hold until the folder moves of issue 15: workflows/ import the
 * task-queue names from workers/task-queues.ts (they belong in src/shared), and src/cli, an entry point
 * inside the ground's folder, imports workers/ and activities/ (it belongs in a top-level folder).
 */
/** The ground: config, shared types and plan, clients, GPU leases, MLflow, paths. */
const GROUND = '^src/(shared|config|client|gpu|mlflow)/|^src/env\\.ts$';
/** Everything that sits above the ground: entry points, workers, activities, workflows. */
const ABOVE_GROUND = '^(src/cli|src/stack|workers|activities|workflows)/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'workflow-no-node-builtins',
      comment:
        'Workflow code runs in the deterministic sandbox: no Node built-ins (fs, path, child_process...). ' +
        'Do the I/O in an activity and pass the result in.',
      severity: 'error',
      from: { path: '^workflows/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'workflow-activities-as-types',
      comment:
        "Workflows import activities as types only (`import type`) and call them through proxyActivities; " +
        'a value import drags the implementation, and Node, into the workflow bundle.',
      severity: 'error',
      from: { path: '^workflows/' },
      to: { path: '^activities/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'activities-not-workflows',
      comment: 'Activities never import workflows: workflows call activities, not the other way round.',
      severity: 'error',
      from: { path: '^activities/' },
      to: { path: '^workflows/' },
    },
    {
      name: 'activities-not-entry-points',
      comment: 'Activities never import workers or the entry points (CLI, embedded stack) that sit above them.',
      severity: 'error',
      from: { path: '^activities/' },
      to: { path: '^(workers|src/cli|src/stack)/' },
    },
    {
      name: 'ground-not-upward',
      comment:
        'The ground (src/shared, src/config, src/client, src/gpu, src/mlflow, src/env.ts) never imports ' +
        'from the layers above it (src/cli, src/stack, workers, activities, workflows). Move what both need down.',
      severity: 'error',
      from: { path: GROUND },
      to: { path: ABOVE_GROUND },
    },
  ],
  options: {
    // `import type` is erased at compile time; cruise before compiling so that the type-only rule can
    // tell `import type` from a value import.
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/' },
  },
};
