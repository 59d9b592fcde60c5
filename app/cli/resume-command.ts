/**
 * `csr resume ID [--dry-run]` (also `csr run --resume-from ID`): start a new run that keeps the old
 * run's key, so every step whose manifest still matches its spec is reused, and only what is
 * missing is computed. `--dry-run` lists, per iteration and step, what would be reused and what would
 * run, before anything starts.
 */
import type { Client } from '@temporalio/client';
import { connectClient } from '../../src/client/temporal';
import { parseConfig } from '../../src/config';
import type { CsrRunInput } from '../../src/shared/run-types';
import { iterationPlan, iterationStartModel } from '../../src/shared/plan';
import { readManifest, staleReason } from '../../activities/manifest';
import { withInputs } from '../../activities/input-hashes';
import { codeVersion, startRun } from './run-command';
import { followRun } from './follow';
import { openRunRefusal, openRunsOfKey } from './open-runs';
import { table } from './output';
import { sweepCommand } from './sweep/command';

/** The state of the latest run of a workflow chain (continue-as-new carries it forward). */
export async function latestRunInput(client: Client, workflowId: string): Promise<CsrRunInput> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  const payload = started?.input?.payloads?.[0];
  if (!payload) throw new Error(`run ${workflowId} has no start input to resume from`);
  return client.options.loadedDataConverter.payloadConverter.fromPayload<CsrRunInput>(payload as never);
}

/** One row of the dry-run plan. */
export interface ResumeRow {
  iteration: number;
  step: string;
  label: string;
  action: 'reuse' | 'run';
  reason: string;
}

/** Which steps of iterations `from..iterations` would be reused, and why the others would run. */
export async function resumePlan(input: CsrRunInput): Promise<ResumeRow[]> {
  const rows: ResumeRow[] = [];
  if (!input.paths) {
    rows.push({ iteration: 0, step: 'prepare', label: '-', action: 'run', reason: 'the run never finished preparing' });
    return rows;
  }
  const iterations = input.overrides?.iterations ?? input.config.iterations;
  // Folders of steps that will run: whatever reads them will run too (its inputs will change).
  const rerun = new Set<string>();
  for (let iteration = input.nextIteration; iteration <= iterations; iteration++) {
    const model = iterationStartModel(input.paths, iteration);
    for (const planned of iterationPlan(input.config, input.paths, iteration, model)) {
      const spec = withInputs(planned.spec);
      const upstream = Object.keys((spec.inputs as Record<string, string> | undefined) ?? {}).find((dir) => rerun.has(dir));
      const loaded = readManifest(planned.spec.out_dir);
      const stale = upstream
        ? `upstream ${upstream} runs again`
        : loaded
          ? await staleReason(planned.spec.out_dir, spec, loaded)
          : 'no manifest';
      if (stale) rerun.add(planned.spec.out_dir);
      rows.push({ iteration, step: planned.step, label: planned.label, action: stale ? 'run' : 'reuse', reason: stale ?? 'manifest and hashes match' });
    }
  }
  return rows;
}

export async function resumeCommand(id: string, options: { dryRun?: boolean; wait?: boolean }): Promise<number> {
  const client = await connectClient();
  const isSweep = (await client.workflow.getHandle(id).describe()).type === 'csrSweep';
  const old = isSweep ? undefined : await latestRunInput(client, id);
  const refusal = openRunRefusal(id, await openRunsOfKey(client, id, old?.runKey));
  if (refusal && !options.dryRun) {
    console.error(refusal);
    return 2;
  }
  if (isSweep) {
    if (options.dryRun) {
      console.error('--dry-run: not available for a sweep; each of its runs skips the steps whose manifests match');
      return 2;
    }
    return sweepCommand({ resumeFrom: id, wait: options.wait });
  }
  if (old === undefined) throw new Error(`run ${id}: no start input`);
  // The old run's config is checked against today's schema before anything starts (exit 2, one line per field).
  old.config = parseConfig(old.config, `config of run ${id}`, { recorded: true });
  const rows = await resumePlan(old);
  const done = old.history.map((h) => h.iteration);
  console.log(`run ${id}: iterations done ${done.length ? done.join(', ') : 'none'}; resuming from iteration ${old.nextIteration}`);
  console.log(table([['iteration', 'step', 'shard', 'action', 'why'], ...rows.map((r) => [String(r.iteration), r.step, r.label, r.action, r.reason])]));
  if (options.dryRun) {
    console.log('dry run: nothing started');
    return 0;
  }
  const input: CsrRunInput = { ...old, resumedFrom: id, codeVersion: codeVersion() };
  const workflowId = `${old.runKey}-resume-${Date.now().toString(36)}`;
  await startRun(input, workflowId);
  console.log(`started ${workflowId}, reusing the completed steps of ${id}`);
  return options.wait ? followRun(workflowId, client) : 0;
}
