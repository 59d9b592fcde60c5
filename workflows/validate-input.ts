/**
 * Validation of what enters a workflow from outside (the CLI, the Temporal UI, `temporal workflow
 * start`, a schedule): the same zod schema and the same message as the CLI, failing the workflow at
 * once and for good (a config does not get better on retry). Sandbox-safe: no Node built-ins.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { ConfigError, parseConfig } from '../src/config/parse';
import type { CsrConfig } from '../src/config/schema';
import { isSafeKey } from '../src/shared/safe-path';
import type { CsrRunInput, ParamOverrides } from '../src/shared/run-types';

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
 * The problems of `setParams` overrides applied to a config (none = accept). Overrides replace whole
 * sections, as the workflow applies them, so the merged config is what is checked.
 */
export function overrideProblems(config: CsrConfig, overrides: ParamOverrides): string[] {
  const { iterations, ...sections } = overrides;
  try {
    parseConfig({ ...config, ...sections, ...(iterations === undefined ? {} : { iterations }) }, 'setParams');
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}
