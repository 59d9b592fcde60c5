/**
 * The import-rule lint step of `npm test`: dependency-cruiser with the rules in .dependency-cruiser.cjs
 * finds no violation in the tree, and finds each rule's planted violation in a temporary tree.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';

const root = path.resolve(__dirname, '..');
const config = path.join(root, '.dependency-cruiser.cjs');
const depcruise = path.join(root, 'node_modules', '.bin', 'depcruise');
const folders = ['workflows', 'activities', 'workers', 'src', 'bin'];

interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
}

/**
 * Run dependency-cruiser in `cwd` twice: as `npm run lint:imports` does (its exit status; the `err`
 * reporter exits non-zero on errors, the json one always exits 0) and as json (the violations).
 */
function cruise(cwd: string): { status: number | null; violations: Violation[]; stderr: string } {
  const present = folders.filter((folder) => fs.existsSync(path.join(cwd, folder)));
  const run = (outputType: string) =>
    spawnSync(depcruise, ['--config', config, '--output-type', outputType, ...present], {
      cwd,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
  const json = run('json');
  const report = json.stdout ? JSON.parse(json.stdout) : { summary: { violations: [] } };
  const lint = run('err');
  return { status: lint.status, violations: report.summary.violations, stderr: json.stderr + lint.stdout + lint.stderr };
}

const describe = (violations: Violation[]) => violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);

test('the tree keeps every import rule', (t) => {
  const { status, violations, stderr } = cruise(root);
  t.deepEqual(describe(violations), [], stderr);
  t.is(status, 0, stderr);
});

test('a planted violation of each rule is caught and fails the step; type-only activity imports pass', (t) => {
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-import-rules-'));
  t.teardown(() => fs.rmSync(tree, { recursive: true, force: true }));
  const files: Record<string, string> = {
    'workflows/uses-fs.ts': "import * as fs from 'node:fs';\nexport const exists = fs.existsSync;\n",
    'workflows/calls-activity.ts': "import { act } from '../activities/act';\nexport const run = act;\n",
    'workflows/typed-activity.ts': "import type { Acts } from '../activities/act';\nexport type Typed = Acts;\n",
    'workflows/wf.ts': 'export const wf = 1;\n',
    'activities/act.ts':
      "import { wf } from '../workflows/wf';\nexport const act = () => wf;\nexport type Acts = typeof act;\n",
    'activities/uses-worker.ts': "import { queue } from '../workers/queues';\nexport const q = queue;\n",
    'workers/queues.ts': "export const queue = 'csr-cpu';\n",
    'src/cli/main.ts': 'export const main = 1;\n',
    'src/shared/plan.ts': "import { main } from '../cli/main';\nexport const plan = main;\n",
    'src/config/load.ts': "import type { Acts } from '../../activities/act';\nexport type Loaded = Acts;\n",
  };
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(tree, file)), { recursive: true });
    fs.writeFileSync(path.join(tree, file), text);
  }
  const { status, violations, stderr } = cruise(tree);
  t.deepEqual(
    describe(violations).sort(),
    [
      'activities-not-entry-points: activities/uses-worker.ts -> workers/queues.ts',
      'activities-not-workflows: activities/act.ts -> workflows/wf.ts',
      'ground-not-upward: src/config/load.ts -> activities/act.ts',
      'ground-not-upward: src/shared/plan.ts -> src/cli/main.ts',
      'workflow-activities-as-types: workflows/calls-activity.ts -> activities/act.ts',
      'workflow-no-node-builtins: workflows/uses-fs.ts -> fs',
    ],
    stderr,
  );
  t.not(status, 0, 'the lint step must exit non-zero on a violation');
});
