/**
 * Validation of what enters a workflow from outside (the CLI, the Temporal UI, `temporal workflow
 * start`, a schedule): the same zod schema and the same message as the CLI, failing the workflow at
 * once and for good (a config does not get better on retry). Sandbox-safe: no Node built-ins.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { ConfigError, parseConfig } from '../src/config/parse';
import type { CsrConfig } from '../src/config/schema';
import { isSafeKey } from '../src/shared/safe-path';
import { PARAM_SECTIONS, type CsrRunInput, type ParamOverrides, type ParamPatch } from '../src/shared/run-types';

/** The error type retry policies and callers match: a refused config or input. */
export const CONFIG_ERROR = 'ConfigError';

/** The config, defaults filled, or a non-retryable `ConfigError` failure with the CLI's message. */
export function validConfig(config: unknown, source: string): CsrConfig {
  try {
    // Recorded: the input of a run started before a key was retired (continue-as-new, a resume) still loads.
    return parseConfig(config, source, { recorded: true });
  } catch (error) {
    if (error instanceof ConfigError) {
      throw ApplicationFailure.create({ message: `invalid config ${error.message}`, type: CONFIG_ERROR, nonRetryable: true, details: [error.problems] });
    }
    throw error;
  }
}

/** A run's input, checked: its config, and its run key (a folder name under the artifact root). */
export function validRunInput(input: CsrRunInput, runKey: string): CsrRunInput {
  const config = validConfig(input.config, input.configFile || 'workflow input');
  if (!isSafeKey(runKey)) {
    throw ApplicationFailure.create({
      message: `invalid run key ${JSON.stringify(runKey).slice(0, 80)}: expected letters, digits, ., - and _ (it names the run's artifact folder)`,
      type: CONFIG_ERROR,
      nonRetryable: true,
    });
  }
  return { ...input, config };
}

/**
 * The overrides after `patch`: each patched section is the section in force (the config's, or an earlier
 * override's) with the patch's fields over it. Refused with a `ConfigError` that names each problem when
 * the patch names something a run cannot change or the resulting config would be invalid.
 */
export function patchedOverrides(config: CsrConfig, current: ParamOverrides | undefined, patch: ParamPatch): ParamOverrides {
  const allowed: readonly string[] = ['iterations', ...PARAM_SECTIONS];
  const unknown = Object.keys(patch).filter((key) => !allowed.includes(key));
  const problems = unknown.map((key) => `${key}: cannot change while a run goes on (only ${allowed.join(', ')})`);
  const next: ParamOverrides = { ...current };
  for (const section of PARAM_SECTIONS) {
    const fields = patch[section];
    if (fields !== undefined) next[section] = { ...config[section], ...current?.[section], ...fields } as never;
  }
  if (patch.iterations !== undefined) next.iterations = patch.iterations;
  if (problems.length === 0) {
    const { iterations, ...sections } = next;
    try {
      parseConfig({ ...config, ...sections, ...(iterations === undefined ? {} : { iterations }) }, 'setParams');
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems);
    }
  }
  if (problems.length > 0) {
    throw ApplicationFailure.create({
      message: `setParams refused: ${problems.join('; ')}`,
      type: CONFIG_ERROR,
      nonRetryable: true,
      details: [problems],
    });
  }
  return next;
}
