/**
 * Which environment variable a config may name as the judge's API key. The worker reads that variable
 * and sends its value to `evaluate.judge.url`, so a config could otherwise ship any secret of the
 * worker's environment to any host: the operator lists the allowed names in `CSR_JUDGE_KEY_ENVS`.
 */
import type { CsrConfig } from './schema';

/** The operator's allowlist variable. */
export const JUDGE_KEY_ENVS = 'CSR_JUDGE_KEY_ENVS';

/** Names in a comma- or space-separated list. */
export function allowedJudgeKeys(list: string | undefined): string[] {
  return (list ?? '').split(/[\s,]+/).filter(Boolean);
}

/** The problem line for a judge key variable outside the allowlist, or undefined when it is allowed. */
export function judgeKeyProblem(config: Pick<CsrConfig, 'evaluate'>, allowlist: string | undefined): string | undefined {
  const name = config.evaluate.judge?.api_key_env;
  if (name === undefined) return undefined;
  const allowed = allowedJudgeKeys(allowlist);
  if (allowed.includes(name)) return undefined;
  const listed = allowed.length ? `one of ${allowed.join(', ')}` : `a variable listed in ${JUDGE_KEY_ENVS} (empty here)`;
  return `evaluate.judge.api_key_env: expected ${listed}, got ${JSON.stringify(name)}; an operator allows a key variable by adding it to ${JUDGE_KEY_ENVS}`;
}
