/** Make sure the server has the CSR search attributes, so a run may upsert them (see src/shared/search-attributes.ts). */
import type { Client } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { CSR_SEARCH_ATTRIBUTES } from '../shared/search-attributes';

/**
 * True when every CSR search attribute is registered in the client's namespace, registering missing
 * ones first (the embedded server has them from its start flags; an external one may refuse). False,
 * with one warning, when they cannot be: the run then goes on without them.
 */
export async function ensureSearchAttributes(client: Client, warn: (line: string) => void = console.warn): Promise<boolean> {
  const operator = client.connection.operatorService;
  const namespace = client.options.namespace;
  try {
    const registered = (await operator.listSearchAttributes({ namespace })).customAttributes ?? {};
    const missing = CSR_SEARCH_ATTRIBUTES.filter((key) => registered[key.name] === undefined);
    if (missing.length > 0) {
      await operator.addSearchAttributes({
        namespace,
        searchAttributes: Object.fromEntries(missing.map((key) => [key.name, encodeSearchAttributeIndexedValueType(key.type)!])),
      });
    }
    return true;
  } catch (error) {
    const names = CSR_SEARCH_ATTRIBUTES.map((key) => key.name).join(', ');
    warn(`[temporal] search attributes ${names} are not registered (${(error as Error).message.split('\n')[0]}); the run is not filterable by them`);
    return false;
  }
}
