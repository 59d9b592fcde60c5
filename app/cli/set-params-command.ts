/**
 * `csr set <id> key=value...`: change a running run's parameters from its next iteration on, through the
 * run workflow's `setParams` update. The run checks the change against the config schema and answers; a
 * refused change is printed with one line per problem and changes nothing.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { parse as parseYaml } from 'yaml';
import { connectClient } from '../../src/client/temporal';
import { PARAM_SECTIONS, type ParamOverrides, type ParamPatch } from '../../src/shared/run-types';
import { setParamsUpdate } from '../../workflows/messages';

/**
 * `['iterations=5', 'dpo.beta=0.2']` -> `{iterations: 5, dpo: {beta: 0.2}}`; each value is read as YAML
 * (so `0.2` is a number, `true` a boolean, `[a, b]` a list). Throws a TypeError naming a malformed one.
 */
export function parseAssignments(assignments: string[]): ParamPatch {
  const patch: Record<string, unknown> = {};
  for (const assignment of assignments) {
    const match = /^([a-z_]+)(?:\.([a-z_]+))?=(.*)$/s.exec(assignment);
    if (!match) throw new TypeError(`${JSON.stringify(assignment)}: expected iterations=N or section.field=value`);
    const [, key, field, text] = match as unknown as [string, string, string | undefined, string];
    const value: unknown = parseYaml(text);
    if (field === undefined) patch[key] = value;
    else patch[key] = { ...(patch[key] as Record<string, unknown> | undefined), [field]: value };
  }
  return patch as ParamPatch;
}

/** What is in force after an accepted change, one `key=value` per changed field. */
function describe(patch: ParamPatch, now: ParamOverrides): string {
  const lines = patch.iterations === undefined ? [] : [`iterations=${now.iterations}`];
  for (const section of PARAM_SECTIONS) {
    for (const field of Object.keys(patch[section] ?? {})) {
      lines.push(`${section}.${field}=${JSON.stringify((now[section] as Record<string, unknown>)[field])}`);
    }
  }
  return lines.join(' ');
}

export async function setParamsCommand(id: string, assignments: string[]): Promise<number> {
  let patch: ParamPatch;
  try {
    patch = parseAssignments(assignments);
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 2;
  }
  const client = await connectClient();
  try {
    const now = await client.workflow.getHandle(id).executeUpdate(setParamsUpdate, { args: [patch] });
    console.log(`${id}: from the next iteration on, ${describe(patch, now)}`);
    return 0;
  } catch (error) {
    if (!(error instanceof WorkflowUpdateFailedError)) throw error;
    console.error(`${id}: ${error.cause?.message ?? error.message}`);
    return 2;
  }
}
