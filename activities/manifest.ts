/**
 * Reading a step's `manifest.json` (written last by the compute contract, so its presence marks the
 * step complete) and deciding whether a step can be skipped because an earlier run finished it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { specHash } from './canonical-json';
import { matchesWithoutInputs } from './input-hashes';

/** One artifact listed in a manifest. */
export interface ManifestFile {
  sha256: string;
  bytes: number;
}

/** `manifest.json` as `csr_compute.contract.write_manifest` writes it. */
export interface StepManifest {
  contract: number;
  step: string;
  code_version?: string;
  spec_hash: string;
  files: Record<string, ManifestFile>;
  items_total: number;
  items_reused: number;
  items_computed: number;
  stats: Record<string, unknown>;
  /** Seconds of the step process: start-up (interpreter, imports), model loading, compute; absent in-process. */
  timings?: StepTimings;
}

/** Where a step process's time went (`csr_compute.contract.StepClock`). */
export interface StepTimings {
  startup_s: number;
  load_s: number;
  compute_s: number;
}

/** A manifest together with the hash of its own bytes (what the activity reports). */
export interface LoadedManifest {
  manifest: StepManifest;
  sha256: string;
}

/** Path of the manifest of a step's output folder. */
export const manifestPath = (outDir: string) => path.join(outDir, 'manifest.json');

/** sha256 (hex) of a file, streamed so that a multi-GB checkpoint neither fills memory nor blocks the loop. */
export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const digest = createHash('sha256');
    fs.createReadStream(file)
      .on('data', (chunk) => digest.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(digest.digest('hex')));
  });
}

/** The manifest of `outDir`, or undefined when there is none or it is not a manifest (a torn or foreign file). */
export function readManifest(outDir: string): LoadedManifest | undefined {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(manifestPath(outDir));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let manifest: StepManifest;
  try {
    manifest = JSON.parse(bytes.toString('utf8')) as StepManifest;
  } catch {
    return undefined;
  }
  if (typeof manifest !== 'object' || manifest === null || typeof manifest.spec_hash !== 'string') return undefined;
  if (typeof manifest.files !== 'object' || manifest.files === null) return undefined;
  return { manifest, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Config keys retired from the `dpo` section with the one value each could hold (issue 15). A DPO spec
 * written before carried them in `params`; mirrored in `csr_compute/steps/dpo.py` (RETIRED_PARAMS).
 */
const RETIRED_DPO_PARAMS = { reference: 'iteration_start', policy_init: 'previous_merged', data: 'current_iteration' };

/**
 * `spec` and the form it had before the retired keys went, so that a step an earlier run finished still
 * counts as finished. Only a DPO spec ever held them; adding them to another step's `params` makes a
 * spec that never existed, whose hash matches nothing.
 */
function specForms(spec: Record<string, unknown>): Record<string, unknown>[] {
  const params = spec.params;
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return [spec];
  return [spec, { ...spec, params: { ...RETIRED_DPO_PARAMS, ...params } }];
}

/** Why a finished-looking step is not reusable, or undefined when it is. */
export async function staleReason(
  outDir: string,
  spec: Record<string, unknown>,
  loaded: LoadedManifest,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const recorded = loaded.manifest.spec_hash;
  const matches = (form: Record<string, unknown>) =>
    recorded === specHash(form) || matchesWithoutInputs(form, recorded, manifestPath(outDir));
  if (!specForms(spec).some(matches)) {
    return 'the spec changed';
  }
  for (const [name, file] of Object.entries(loaded.manifest.files)) {
    // Hashing a checkpoint takes a while; a cancellation should not wait for all of them.
    signal?.throwIfAborted();
    const full = path.join(outDir, name);
    let size: number;
    try {
      size = fs.statSync(full).size;
    } catch {
      return `${name} is missing`;
    }
    // The size check is free and catches truncation before paying for a hash.
    if (typeof file.bytes === 'number' && size !== file.bytes) return `${name} changed size`;
    if ((await sha256File(full)) !== file.sha256) return `${name} changed content`;
  }
  return undefined;
}

/** Up to `limit` finite numbers of `stats`, nothing nested: what fits a small activity result. */
export function flatNumbers(stats: unknown, limit = 64): Record<string, number> {
  const out: Record<string, number> = {};
  if (typeof stats !== 'object' || stats === null) return out;
  for (const [key, value] of Object.entries(stats)) {
    if (Object.keys(out).length >= limit) break;
    if (typeof value === 'number' && Number.isFinite(value) && key.length <= 128) out[key] = value;
  }
  return out;
}
