/**
 * Import rules: the seams between folders (README "Seams we keep", issue 15). Folders are layers and an
 * import never runs upward: the entry points (app/: the CLI and the embedded stack) on top, then workers/,
 * activities/, workflows/, and the ground (src/: config, shared types and plan, task-queue names, clients,
 * GPU leases, MLflow, paths) at the bottom.
 * Checked by test/import-rules.test.ts inside `npm test`, or by hand with `npm run lint:imports`.
 * Each rule is one seam; the test plants one violation of each in a temporary tree and expects it here.
 */
/** The ground: everything under src/. */
const GROUND = '^src/';
/** Everything that sits above the ground: entry points, workers, activities, workflows. */
const ABOVE_GROUND = '^(app|workers|activities|workflows)/';

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
      name: 'workflows-not-workers',
      comment:
        'Workflows never import workers or the entry points: what both need (task-queue names, shared types) ' +
        'lives in src/shared.',
      severity: 'error',
      from: { path: '^workflows/' },
      to: { path: '^(workers|app)/' },
    },
    {
      name: 'activities-not-entry-points',
      comment: 'Activities never import workers or the entry points (CLI, embedded stack) that sit above them.',
      severity: 'error',
      from: { path: '^activities/' },
      to: { path: '^(workers|app)/' },
    },
    {
      name: 'workers-not-entry-points',
      comment: 'Workers never import the entry points (app/: CLI, embedded stack); the CLI starts workers.',
      severity: 'error',
      from: { path: '^workers/' },
      to: { path: '^app/' },
    },
    {
      name: 'ground-not-upward',
      comment:
        'The ground (src/: shared, config, client, gpu, mlflow, env.ts) never imports from the layers above it ' +
        '(app/, workers/, activities/, workflows/). Move what both need down.',
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
