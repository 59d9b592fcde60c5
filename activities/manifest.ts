/**
 * Reading a step's `manifest.json` (written last by the compute contract, so its presence marks the
 * step complete) and deciding whether a step can be skipped because an earlier run finished it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
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
  /** The steps' own hash of their spec (Python's `json.dumps(spec, sort_keys=True)`); not read here. */
  spec_hash: string;
  /**
   * sha256 of the step folder's spec.json as the activity wrote it, when it held the spec the step ran:
   * what reuse compares. Absent from manifests written before it was recorded.
   */
  spec_file_sha256?: string;
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

/** The bytes of a step's spec.json as the activity writes it: the manifest records their sha256. */
export function specText(spec: Record<string, unknown>): string {
  return `${JSON.stringify(spec, null, 2)}\n`;
}

/** sha256 (hex) of {@link specText}: the `spec_file_sha256` of a manifest written for `spec`. */
export function specFileHash(spec: Record<string, unknown>): string {
  return createHash('sha256').update(specText(spec), 'utf8').digest('hex');
}

/** True when `loaded` was written for `spec` (by a step launched with exactly that spec.json). */
export function manifestIsFor(loaded: LoadedManifest, spec: Record<string, unknown>): boolean {
  return loaded.manifest.spec_file_sha256 === specFileHash(spec);
}

/**
 * For a manifest written before `spec_file_sha256` was recorded: true when the spec.json beside it holds
 * `form` (compared parsed, so key order does not matter) and is no newer than the manifest, so no later
 * launch of another spec wrote it.
 */
function earlierManifestIsFor(outDir: string, form: Record<string, unknown>): boolean {
  const specFile = path.join(outDir, 'spec.json');
  try {
    if (!isDeepStrictEqual(JSON.parse(fs.readFileSync(specFile, 'utf8')), JSON.parse(JSON.stringify(form)))) return false;
    return fs.statSync(specFile).mtimeMs <= fs.statSync(manifestPath(outDir)).mtimeMs;
  } catch {
    return false;
  }
}

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
  if (loaded.manifest.spec_file_sha256 !== undefined) {
    if (!manifestIsFor(loaded, spec)) return 'the spec changed';
  } else {
    // Written by an earlier version: by the spec.json beside it, in any form that spec could have had then.
    const isFor = (form: Record<string, unknown>) => earlierManifestIsFor(outDir, form);
    const matches = (form: Record<string, unknown>) => isFor(form) || matchesWithoutInputs(form, isFor, manifestPath(outDir));
    if (!specForms(spec).some(matches)) return 'the spec changed';
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
