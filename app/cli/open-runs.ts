/**
 * Which runs still write a run key's step folders. A resume started beside an open run would have two
 * runs computing the same steps into the same folders, so `csr resume` refuses while any is open.
 */
import type { Client } from '@temporalio/client';

/** Ids of open workflows that write `runKey`'s folders: `id` itself and every run or resume of that key. */
export async function openRunsOfKey(client: Client, id: string, runKey?: string): Promise<string[]> {
  const open = new Set<string>();
  const description = await client.workflow.getHandle(id).describe();
  if (description.status.name === 'RUNNING') open.add(id);
  if (runKey) {
    // Resumes are named `<runKey>-resume-<time>`; the list of running workflows is short, so filter here
    // rather than rely on a prefix query that not every visibility store supports.
    for await (const execution of client.workflow.list({ query: 'ExecutionStatus="Running"' })) {
      if (execution.workflowId === runKey || execution.workflowId.startsWith(`${runKey}-resume-`)) {
        open.add(execution.workflowId);
      }
    }
  }
  return [...open].sort();
}

/** The one-line refusal for a resume of `id` while `open` runs are still going, or undefined when none is. */
export function openRunRefusal(id: string, open: readonly string[]): string | undefined {
  if (open.length === 0) return undefined;
  const which = open.length === 1 && open[0] === id ? `run ${id} is still open` : `runs still open on ${id}'s folders: ${open.join(', ')}`;
  return (
    `csr resume: ${which}; a resume now would make two runs write the same step folders. ` +
    `Wait for it to end or cancel it first (npx csr cancel ${open[0]}), then resume.`
  );
}
