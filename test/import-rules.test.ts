/**
 * The import-rule lint step of `npm test`: dependency-cruiser with the rules in .dependency-cruiser.cjs
 * and .dependency-cruiser-runtime.cjs finds no violation in the tree, and finds each rule's planted
 * violation in a temporary tree.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';

const root = path.resolve(__dirname, '..');
const configs = [path.join(root, '.dependency-cruiser.cjs'), path.join(root, '.dependency-cruiser-runtime.cjs')];
const depcruise = path.join(root, 'node_modules', '.bin', 'depcruise');
const folders = ['app', 'workflows', 'activities', 'workers', 'src', 'bin'];

interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
}

/** Run dependency-cruiser in `cwd` with each config (`outputType` `err`: as `npm run lint:imports` does). */
function depcruiseRuns(cwd: string, outputType: 'json' | 'err') {
  const present = folders.filter((folder) => fs.existsSync(path.join(cwd, folder)));
  return configs.map((config) =>
    spawnSync(depcruise, ['--config', config, '--output-type', outputType, ...present], {
      cwd,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    }),
  );
}

/** The violations found in `cwd`, and what dependency-cruiser wrote to stderr. */
function violationsIn(cwd: string): { violations: Violation[]; stderr: string } {
  const runs = depcruiseRuns(cwd, 'json');
  // A run that did not cruise (a bad config, a crash) must not read as "no violations".
  const failed = runs.find((run) => run.status !== 0 || !run.stdout);
  if (failed) throw new Error(`dependency-cruiser did not run (exit ${failed.status}): ${failed.stderr}`);
  const violations = runs.flatMap((run) => JSON.parse(run.stdout).summary.violations as Violation[]);
  return { violations, stderr: runs.map((run) => run.stderr).join('') };
}

const describe = (violations: Violation[]) => violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);

test('the tree keeps every import rule', (t) => {
  const { violations, stderr } = violationsIn(root);
  t.deepEqual(describe(violations), [], stderr);
});

test('a planted violation of each rule is caught and fails the step; type-only activity imports pass', (t) => {
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-import-rules-'));
  t.teardown(() => fs.rmSync(tree, { recursive: true, force: true }));
  const files: Record<string, string> = {
    'workflows/uses-fs.ts': "import * as fs from 'node:fs';\nexport const exists = fs.existsSync;\n",
    'workflows/calls-activity.ts': "import { act } from '../activities/act';\nexport const run = act;\n",
    'workflows/typed-activity.ts': "import type { Acts } from '../activities/act';\nexport type Typed = Acts;\n",
    'workflows/uses-plan.ts': "import { plan } from '../src/shared/plan';\nexport const p = plan;\n",
    'workflows/wf.ts': 'export const wf = 1;\n',
    'workflows/uses-queue.ts': "import { queue } from '../workers/queues';\nexport const q = queue;\n",
    // Reaches node:crypto, but the workflows that import it as a type only do not.
    'activities/act.ts':
      "import { createHash } from 'node:crypto';\nimport { wf } from '../workflows/wf';\n" +
      'export const act = () => createHash(String(wf));\nexport type Acts = typeof act;\n',
    'activities/uses-worker.ts': "import { queue } from '../workers/queues';\nexport const q = queue;\n",
    'workers/queues.ts': "export const queue = 'csr-cpu';\n",
    'workers/uses-cli.ts': "import { main } from '../app/cli/main';\nexport const m = main;\n",
    'app/cli/main.ts': 'export const main = 1;\n',
    'src/shared/plan.ts':
      "import { main } from '../../app/cli/main';\nimport { sep } from '../shared/paths';\nexport const plan = main + sep;\n",
    'src/gpu/leases.ts': "import { queue } from '../../workers/queues';\nexport const q = queue;\n",
    'src/shared/paths.ts': "import * as path from 'node:path';\nexport const sep = path.sep;\n",
    'src/config/load.ts': "import type { Acts } from '../../activities/act';\nexport type Loaded = Acts;\n",
  };
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(tree, file)), { recursive: true });
    fs.writeFileSync(path.join(tree, file), text);
  }
  const { violations, stderr } = violationsIn(tree);
  t.deepEqual(
    describe(violations).sort(),
    [
      'activities-not-entry-points: activities/uses-worker.ts -> workers/queues.ts',
      'activities-not-workflows: activities/act.ts -> workflows/wf.ts',
      'ground-not-upward: src/config/load.ts -> activities/act.ts',
      'ground-not-upward: src/gpu/leases.ts -> workers/queues.ts',
      'ground-not-upward: src/shared/plan.ts -> app/cli/main.ts',
      'workers-not-entry-points: workers/uses-cli.ts -> app/cli/main.ts',
      'workflow-activities-as-types: workflows/calls-activity.ts -> activities/act.ts',
      'workflow-no-node-builtins: workflows/uses-fs.ts -> fs',
      'workflow-reaches-no-node-builtins: workflows/calls-activity.ts -> crypto',
      'workflow-reaches-no-node-builtins: workflows/uses-fs.ts -> fs',
      'workflow-reaches-no-node-builtins: workflows/uses-plan.ts -> path',
      'workflows-not-workers: workflows/uses-queue.ts -> workers/queues.ts',
    ],
    stderr,
  );
  // The json reporter always exits 0; the err reporter of `npm run lint:imports` fails on a violation.
  t.deepEqual(
    depcruiseRuns(tree, 'err').map((run) => run.status !== 0),
    [true, true],
    'each config must make `npm run lint:imports` exit non-zero on its violations',
  );
});
