/**
 * Names that become parts of a path (run keys, schedule ids, benchmark names). Pure, so workflow code
 * may use it; `insideRoot` (Node) in `src/shared/inside-root.ts` checks the path they make.
 */

/** Letters, digits, `.`, `-`, `_`; no leading dot (so never `.` or `..`), no separators. */
const SAFE_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/** Whether `name` can be one folder name under a root without leaving it. */
export function isSafeKey(name: unknown): name is string {
  return typeof name === 'string' && SAFE_KEY.test(name) && !name.includes('..');
}

/**
 * A safe key made from a workflow id: scheduled runs take theirs from Temporal (`<id>-run-2026-01-01T02:00:00Z`),
 * whose colons and any other character outside the safe set become `-`.
 */
export function safeKeyFrom(workflowId: string): string {
  const key = workflowId.replace(/[^A-Za-z0-9._-]/g, '-').replace(/\.{2,}/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return key.slice(0, 200) || 'run';
}
