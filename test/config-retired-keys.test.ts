/**
 * Config keys that did nothing are gone (issue 15): `dpo.reference`, `dpo.policy_init`, `dpo.data`
 * (one allowed value each, the fixed behaviour) and `torch_threads` (read by no code). A config file that
 * still holds one is refused with the reason; the recorded config of a run started before still loads,
 * and a DPO step such a run finished is still reused.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { readManifest, staleReason } from '../activities/manifest';
import { ConfigError, loadConfig, parseConfig } from '../src/config';
import { dpoStep, type PlannedStep } from '../src/shared/plan';
import type { RunPaths } from '../src/shared/run-types';

const base = { name: 'x', iterations: 1, model: { source: 'toyworld' }, clip: { source: 'toyworld' } };
const before = {
  ...base,
  dpo: { beta: 0.1, reference: 'iteration_start', policy_init: 'previous_merged', data: 'current_iteration' },
  torch_threads: 2,
};

test('a config file holding a retired key is refused, one line per key saying why and what to do', (t) => {
  const error = t.throws(() => parseConfig(before, 'old.yaml'), { instanceOf: ConfigError });
  t.deepEqual(error?.problems, [
    'dpo.reference: removed (the reference is always the iteration\'s starting model), got "iteration_start"; delete the line',
    'dpo.policy_init: removed (the policy always starts from the previous merged model), got "previous_merged"; delete the line',
    'dpo.data: removed (DPO always trains on the iteration\'s own pairs), got "current_iteration"; delete the line',
    "torch_threads: removed (a stand-in worker's threads are set by the worker (cores / stand-ins)), got 2; delete the line",
  ]);
  // Other problems are still reported alongside.
  const both = t.throws(() => parseConfig({ ...before, iterations: 0 }, 'old.yaml'), { instanceOf: ConfigError });
  t.is(both?.problems.length, 5);
});

test('the recorded config of a run started before loads without the retired keys; another value is an unknown field', (t) => {
  const config = parseConfig(before, 'config of run r', { recorded: true });
  t.false('reference' in config.dpo || 'policy_init' in config.dpo || 'data' in config.dpo);
  t.false('torch_threads' in config);
  t.is(config.dpo.beta, 0.1);
  const error = t.throws(() => parseConfig({ ...base, dpo: { reference: 'initial_model' } }, 'r', { recorded: true }), {
    instanceOf: ConfigError,
  });
  t.deepEqual(error?.problems, ['dpo.reference: unknown field (got "initial_model"); check its spelling']);
});

test('the shipped configs hold no retired key', (t) => {
  const folder = path.resolve(__dirname, '..', 'configs');
  for (const file of fs.readdirSync(folder).filter((name) => name.endsWith('.yaml'))) {
    t.notThrows(() => loadConfig(path.join(folder, file), { ...process.env, CSR_HOME: os.tmpdir() }), file);
  }
});

test('a DPO step finished by a run from before the keys went is still reused; a changed DPO setting is not', async (t) => {
  const config = parseConfig(base);
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-retired-'));
  t.teardown(() => fs.rmSync(run, { recursive: true, force: true }));
  const paths = { artifactRoot: run } as RunPaths;
  const curated = { step: 'curate', spec: { out_dir: path.join(run, 'iter-01', 'curate') } } as unknown as PlannedStep;
  const { spec } = dpoStep(config, paths, 1, path.join(run, 'iter-00', 'model'), curated);
  const outDir = String(spec.out_dir);
  const written = { ...spec, params: { ...config.dpo, reference: 'iteration_start', policy_init: 'previous_merged', data: 'current_iteration' } };
  fs.mkdirSync(outDir, { recursive: true });
  // As the step was left then: its spec.json, then a manifest without spec_file_sha256.
  fs.writeFileSync(path.join(outDir, 'spec.json'), JSON.stringify(written, null, 2));
  fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify({ contract: 1, spec_hash: 'python', files: {} }));
  t.is(await staleReason(outDir, spec, readManifest(outDir)!), undefined);
  const changed = { ...spec, params: { ...config.dpo, beta: 0.2 } };
  t.is(await staleReason(outDir, changed, readManifest(outDir)!), 'the spec changed');
});
