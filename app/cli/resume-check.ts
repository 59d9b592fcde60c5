/**
 * Before `csr resume ID` (and `run --resume-from ID`): a run that completed has nothing to resume, so
 * say so instead of planning a resume "from" its last iteration.
 */
import type { Client } from '@temporalio/client';
import type { IterationSummary } from '../../src/shared/run-types';

/** The message for a completed run `id`, or undefined when a resume may go on (open, failed, a sweep). */
export async function nothingToResume(client: Client, id: string): Promise<string | undefined> {
  const handle = client.workflow.getHandle(id);
  const description = await handle.describe();
  if (description.type !== 'csrRun' || description.status.name !== 'COMPLETED') return undefined;
  const history = ((await handle.result()) ?? []) as IterationSummary[];
  const last = history[history.length - 1]?.iteration;
  const done = last === undefined ? '' : ` (iterations 0-${last} done)`;
  return `run ${id} completed${done}: nothing to resume. Its results: npx csr status ${id}; a new run: npx csr run --config FILE`;
}
