/**
 * Inputs by content: before a step is checked for reuse or launched, its spec gets `inputs`, the
 * sha256 of the `manifest.json` of every upstream step folder it reads. The spec's hash (which the
 * manifest records and reuse compares) then changes whenever an upstream step was recomputed, so a
 * resume never reuses a merged model, pairs or metrics made from inputs that are no longer there.
 * Read from disk at launch, not carried by the workflow: the hashes are of exactly what the step will
 * read, and the workflow's commands (and so the replay of runs in flight) stay as they were.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** How far above an input path an upstream step folder is looked for (`<step>/model/...` is 1). */
const MAX_LEVELS_UP = 3;

/** The folder holding the manifest of the step that wrote `file`, or undefined (not a step output). */
function upstreamFolder(file: string, ownDir: string): string | undefined {
  let dir = file;
  for (let level = 0; level <= MAX_LEVELS_UP; level++) {
    if (dir === ownDir || ownDir.startsWith(`${dir}${path.sep}`)) return undefined;
    const manifest = path.join(dir, 'manifest.json');
    try {
      const parsed = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { spec_hash?: unknown; files?: unknown };
      // Only a step manifest counts, not some model's or data set's own manifest.json.
      if (typeof parsed.spec_hash === 'string' && typeof parsed.files === 'object') return dir;
    } catch {
      // none here (or not ours): look one level up
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
  return undefined;
}

function pathsIn(value: unknown, found: string[]): void {
  if (typeof value === 'string' && path.isAbsolute(value)) found.push(path.normalize(value));
  else if (Array.isArray(value)) for (const item of value) pathsIn(item, found);
  else if (typeof value === 'object' && value !== null) for (const item of Object.values(value)) pathsIn(item, found);
}

/** `{upstream step folder: sha256 of its manifest.json}` for every absolute path in `spec` (except its own out_dir). */
export function upstreamManifestHashes(spec: Record<string, unknown>): Record<string, string> {
  const ownDir = path.normalize(String(spec.out_dir));
  const paths: string[] = [];
  pathsIn({ ...spec, out_dir: undefined, inputs: undefined }, paths);
  const hashes: Record<string, string> = {};
  for (const file of paths) {
    const folder = upstreamFolder(file, ownDir);
    if (folder === undefined || folder in hashes) continue;
    hashes[folder] = createHash('sha256').update(fs.readFileSync(path.join(folder, 'manifest.json'))).digest('hex');
  }
  return hashes;
}

/** `spec` with its `inputs` (sorted by folder) when it reads any upstream step output; else `spec` unchanged. */
export function withInputs(spec: Record<string, unknown>): Record<string, unknown> {
  const hashes = upstreamManifestHashes(spec);
  const folders = Object.keys(hashes).sort();
  if (folders.length === 0) return spec;
  return { ...spec, inputs: Object.fromEntries(folders.map((folder) => [folder, hashes[folder]])) };
}

/**
 * True when `manifestFile` was written for `spec` before specs carried `inputs` (`isFor` the spec without
 * them) and no upstream manifest is newer than it: the upstream steps were not redone since, so the
 * step's outputs are still of these inputs. Lets runs made before inputs were recorded resume without
 * recomputing everything once.
 */
export function matchesWithoutInputs(
  spec: Record<string, unknown>,
  isFor: (form: Record<string, unknown>) => boolean,
  manifestFile: string,
): boolean {
  const inputs = spec.inputs as Record<string, string> | undefined;
  if (inputs === undefined) return false;
  const { inputs: _dropped, ...without } = spec;
  if (!isFor(without)) return false;
  try {
    const written = fs.statSync(manifestFile).mtimeMs;
    return Object.keys(inputs).every((folder) => fs.statSync(path.join(folder, 'manifest.json')).mtimeMs <= written);
  } catch {
    return false;
  }
}
