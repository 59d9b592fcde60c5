/**
 * The import rule that needs the runtime graph (imports as compiled: `import type` erased), beside the
 * rules in .dependency-cruiser.cjs, which need the type-only imports too (dependency-cruiser decides
 * this per run). Checked by test/import-rules.test.ts and `npm run lint:imports`.
 */
const { builtinModules } = require('node:module');

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'workflow-reaches-no-node-builtins',
      comment:
        'Nothing a workflow imports at run time, however indirectly (src/shared, src/config...), may import a ' +
        "Node built-in: it would end up in the workflow bundle, which Temporal's sandbox refuses at worker start.",
      severity: 'error',
      from: { path: '^workflows/' },
      to: { path: `^(node:)?(${builtinModules.join('|')})$`, reachable: true },
    },
  ],
  options: {
    tsPreCompilationDeps: false,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/' },
  },
};
