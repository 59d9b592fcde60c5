/**
 * The spec hash is the sha256 of spec.json's bytes as the activity writes them: the compute contract
 * records it (`spec_file_sha256`) and reuse compares it, with no imitation of how Python writes JSON.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { readManifest, specFileHash, specText, staleReason } from '../activities/manifest';
import { repoRoot, tempDir, venvPython } from './helpers/temporal-harness';

/** What the activity does before a launch (spec.json), then what the step does last (write_manifest). */
function runStep(outDir: string, spec: Record<string, unknown>): void {
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'spec.json'), specText(spec));
  const script =
    'import json, sys\nfrom csr_compute.contract import write_manifest\n' +
    'spec = json.load(open(sys.argv[1]))\n' +
    "write_manifest(spec['out_dir'], step='test', spec=spec, files=[], items_total=0, items_reused=0, items_computed=0)\n";
  execFileSync(venvPython, ['-c', script, path.join(outDir, 'spec.json')], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
}

test('a manifest records the hash of the spec.json it ran from, whatever JSON Python would write for the spec', async (t) => {
  const outDir = path.join(tempDir(), 'step');
  // Values where Python's json.dumps and JSON.stringify differ: small and large floats, non-ASCII, key order.
  const spec = { out_dir: outDir, seed: 3, params: { lr: 1e-7, big: 1e21, beta: 0.1, name: 'é 𝔸', b: 1, a: [2.5, null] } };
  runStep(outDir, spec);
  const loaded = readManifest(outDir)!;
  t.is(loaded.manifest.spec_file_sha256, specFileHash(spec));
  t.is(await staleReason(outDir, spec, loaded), undefined, 'reused');
  t.is(await staleReason(outDir, { ...spec, seed: 4 }, loaded), 'the spec changed');
});

test('spec.json rewritten by a launch that never finished: no hash for the old spec, and an earlier manifest is not reused', async (t) => {
  const outDir = path.join(tempDir(), 'step');
  const spec = { out_dir: outDir, seed: 3 };
  runStep(outDir, spec);
  // The step ran from spec.json; a later launch of another spec rewrote the file and never finished.
  fs.writeFileSync(path.join(outDir, 'spec.json'), specText({ ...spec, seed: 5 }));
  const script =
    'import json, sys\nfrom csr_compute.contract import spec_file_sha256\n' +
    'print(json.dumps(spec_file_sha256(sys.argv[1], json.loads(sys.argv[2]))))\n';
  const held = execFileSync(venvPython, ['-c', script, outDir, JSON.stringify(spec)], { cwd: repoRoot, encoding: 'utf8' });
  t.is(held.trim(), 'null', 'spec.json holds another spec');
  // An earlier version's manifest (no spec_file_sha256) is judged by spec.json, which is newer than it.
  const manifest = path.join(outDir, 'manifest.json');
  const { spec_file_sha256: _dropped, ...earlier } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
  fs.writeFileSync(manifest, JSON.stringify(earlier));
  const anHourAgo = new Date(Date.now() - 3_600_000);
  fs.utimesSync(manifest, anHourAgo, anHourAgo);
  t.is(await staleReason(outDir, spec, readManifest(outDir)!), 'the spec changed');
  t.is(await staleReason(outDir, { ...spec, seed: 5 }, readManifest(outDir)!), 'the spec changed', 'spec.json is newer than the manifest');
});
