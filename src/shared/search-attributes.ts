/**
 * The search attributes a CSR run carries in Temporal, so the workflow list can be filtered
 * (`CsrConfig = "toy-csr" AND CsrObjective < 0.2`): the config name, the last finished iteration and its
 * objective value. The embedded dev server registers them at start; the workflow upserts them only
 * when its starter found them registered (`CsrRunInput.searchAttributes`), because an upsert of an
 * unregistered attribute fails the workflow task on every retry.
 */
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';

/** Config name (`config.name`). */
export const CSR_CONFIG = defineSearchAttributeKey('CsrConfig', SearchAttributeType.KEYWORD);
/** Last finished iteration (0 = the starting model evaluated). */
export const CSR_ITERATION = defineSearchAttributeKey('CsrIteration', SearchAttributeType.INT);
/** The objective's value at the last finished iteration. */
export const CSR_OBJECTIVE = defineSearchAttributeKey('CsrObjective', SearchAttributeType.DOUBLE);

/** Every CSR search attribute key. */
export const CSR_SEARCH_ATTRIBUTES = [CSR_CONFIG, CSR_ITERATION, CSR_OBJECTIVE];

/** `temporal server start-dev` flags that register them: `--search-attribute CsrConfig=Keyword ...`. */
export function searchAttributeFlags(): string[] {
  const cliType: Record<string, string> = { KEYWORD: 'Keyword', INT: 'Int', DOUBLE: 'Double' };
  return CSR_SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=${cliType[key.type]}`]);
}

/** What a run's workflow upserts: its config name, and the last iteration with its objective value when it has one. */
export function runSearchAttributes(
  configName: string,
  last?: { iteration: number; metrics: Record<string, number> },
  objective?: string,
): SearchAttributePair[] {
  const pairs: SearchAttributePair[] = [{ key: CSR_CONFIG, value: configName }];
  if (last) {
    pairs.push({ key: CSR_ITERATION, value: last.iteration });
    const value = objective ? last.metrics[objective] : undefined;
    if (typeof value === 'number' && Number.isFinite(value)) pairs.push({ key: CSR_OBJECTIVE, value });
  }
  return pairs;
}
