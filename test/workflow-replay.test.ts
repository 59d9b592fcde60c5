/**
 * Deploying new workflow code must not wedge runs in flight. Histories recorded from real runs of the
 * previous workflow version (test/fixtures/histories: a sweep, one of its runs, one iteration) are
 * replayed against the current workflow code; a change that alters the commands a recorded history
 * expects fails here; guard such a change with `patched('<change id>')` from @temporalio/workflow, so
 * runs started before it replay the old branch, and record a new history once the old runs are gone.
 * The `*-tracking-lane` histories hold the current branch of patch 'tracking-lane' (workflows/tracking-lane.ts),
 * recorded from test/workflow-logic.test.ts's stand-in run (workflow-ids.json says which); the `*-tracking-carry`
 * ones the branch of patch 'tracking-carry', from its 'tracking carry' test (CSR_RECORD_HISTORIES=DIR writes them), the
 * `*-run-tracking-lane` ones the branch of patch 'run-tracking-lane', from its 'run tracking on the lane' test, and
 * csr-iteration-dpo-curves-lane.json the current branch of patch 'dpo-curves-lane' (iteration 1 of the 'tracking carry' test).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';

const fixtures = path.resolve(__dirname, 'fixtures', 'histories');

/**
 * Parse a history exported by `temporal workflow show --output json`. The SDK's own historyFromJSON
 * fails in this install ("type must be a Type"): @temporalio/common and @temporalio/proto each carry a
 * copy of protobufjs, and a type of one is not a Type of the other; so the proto package's copy parses.
 */
function loadHistory(file: string): proto.temporal.api.history.v1.History {
  const protoDir = path.dirname(require.resolve('@temporalio/proto/package.json'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { fromJson } = require(require.resolve('protobufjs/ext/protojson', { paths: [protoDir] })) as {
    fromJson: (type: unknown, json: unknown, options: object) => proto.temporal.api.history.v1.History;
  };
  const type = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');
  return fromJson(type, JSON.parse(fs.readFileSync(file, 'utf8')), { ignoreUnknownFields: true });
}

test('recorded histories of the previous workflow version replay against the current code', async (t) => {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // already installed by another test in this process
  }
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: new DefaultLogger('WARN') });
  const ids = JSON.parse(fs.readFileSync(path.join(fixtures, 'workflow-ids.json'), 'utf8')) as Record<string, string>;
  const files = Object.keys(ids).filter((f) => f.endsWith('.json')).sort();
  t.true(files.length >= 3, `expected recorded histories in ${fixtures}`);
  for (const file of files) {
    const history = loadHistory(path.join(fixtures, file));
    await t.notThrowsAsync(
      Worker.runReplayHistory({ workflowBundle, replayName: file }, history, ids[file]),
      `${file} no longer replays: guard the workflow change with patched()`,
    );
  }
});
