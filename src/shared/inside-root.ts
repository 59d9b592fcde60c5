/** Derived paths that must stay inside their root (artifact folders of runs, benchmarks, schedules). */
import * as path from 'node:path';

/** A path that leaves its root: a name with `..` or `/` that slipped past validation. */
export class PathEscapeError extends Error {
  constructor(
    readonly root: string,
    readonly target: string,
  ) {
    super(`${target} is outside ${root}; names that become path parts may hold only letters, digits, ., - and _`);
    this.name = 'PathEscapeError';
  }
}

/** `root/parts...`, resolved, or a `PathEscapeError` when it is not strictly inside `root`. */
export function insideRoot(root: string, ...parts: string[]): string {
  const base = path.resolve(root);
  const target = path.resolve(base, ...parts);
  const relative = path.relative(base, target);
  if (!relative || relative.startsWith('..') || path.isAbsolute(relative)) throw new PathEscapeError(base, target);
  return target;
}
