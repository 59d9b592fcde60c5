/**
 * Inputs by content: a step's spec carries the sha256 of the manifest of every upstream step folder it
 * reads, so its hash (what reuse compares) changes when an upstream step is recomputed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { upstreamManifestHashes, withInputs } from '../activities/input-hashes';
import { readManifest, specFileHash, staleReason } from '../activities/manifest';
import { tempDir } from './helpers/temporal-harness';

function stepFolder(dir: string, stats: Record<string, number>): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ contract: 1, spec_hash: 'x', files: {}, stats }));
  return dir;
}

test('the upstream step folders of every path in a spec are found and hashed; its own folder and plain folders are not', (t) => {
  const run = tempDir();
  const shard0 = stepFolder(path.join(run, 'iter-01', 'generate', 'shard-0'), { n: 1 });
  const shard1 = stepFolder(path.join(run, 'iter-01', 'generate', 'shard-1'), { n: 2 });
  const merge = stepFolder(path.join(run, 'iter-00', 'merge'), { n: 3 });
  fs.mkdirSync(path.join(merge, 'model'));
  const baseModel = path.join(run, 'models', 'llava');
  fs.mkdirSync(baseModel, { recursive: true });
  // A model's own manifest.json is not a step manifest.
  fs.writeFileSync(path.join(baseModel, 'manifest.json'), JSON.stringify({ name: 'llava' }));
  const outDir = path.join(run, 'iter-01', 'reward', 'shard-0');
  stepFolder(outDir, { own: 1 });
  const spec = {
    out_dir: outDir,
    trees: [path.join(shard0, 'trees.jsonl'), path.join(shard1, 'trees.jsonl')],
    model: path.join(merge, 'model'),
    clip: baseModel,
    params: { nested: path.join(shard0, 'trees.jsonl') },
  };
  const hashes = upstreamManifestHashes(spec);
  t.deepEqual(Object.keys(hashes).sort(), [merge, shard0, shard1].sort());
  const withHashes = withInputs(spec);
  t.deepEqual(Object.keys(withHashes.inputs as object), [merge, shard0, shard1].sort());
  t.is(specFileHash(withInputs(spec)), specFileHash(withHashes), 'the same inputs give the same spec hash');

  // shard 1 was recomputed (its manifest changed): the reward step's spec, and so its hash, changes.
  stepFolder(shard1, { n: 20 });
  t.not(specFileHash(withInputs(spec)), specFileHash(withHashes));
});

test('a spec that reads no upstream step output is left as it is', (t) => {
  const dir = tempDir();
  const spec = { out_dir: path.join(dir, 'out'), model: path.join(dir, 'nothing-here'), seed: 1 };
  t.is(withInputs(spec), spec);
});

test('a step finished before specs carried inputs is reused until an upstream step is redone after it', async (t) => {
  const run = tempDir();
  const upstream = stepFolder(path.join(run, 'iter-01', 'curate'), { pairs: 10 });
  const outDir = path.join(run, 'iter-01', 'dpo');
  const spec = { out_dir: outDir, pairs: [path.join(upstream, 'pairs.jsonl')] };
  fs.mkdirSync(outDir, { recursive: true });
  // The step as an earlier version left it: the spec without inputs, then a manifest without spec_file_sha256.
  fs.writeFileSync(path.join(outDir, 'spec.json'), JSON.stringify(spec, null, 2));
  fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify({ contract: 1, spec_hash: 'python', files: {} }));
  const asRun = withInputs(spec);
  t.truthy(asRun.inputs);
  const anHourAgo = new Date(Date.now() - 3_600_000);
  fs.utimesSync(path.join(upstream, 'manifest.json'), anHourAgo, anHourAgo);
  t.is(await staleReason(outDir, asRun, readManifest(outDir)!), undefined);
  stepFolder(upstream, { pairs: 11 }); // curate redone after the DPO step finished
  t.is(await staleReason(outDir, withInputs(spec), readManifest(outDir)!), 'the spec changed');
});
