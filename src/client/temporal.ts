/** A Temporal client for the configured server (embedded or external), with a clear error when none answers. */
import { Client, Connection } from '@temporalio/client';
import { csrEnv, type CsrEnv } from '../env';
import { TemporalAuthError, temporalConnectionOptions } from './temporal-auth';

/** Connect to TEMPORAL_ADDRESS (or the embedded server); fails fast with the fix in the message. */
export async function connectClient(env: CsrEnv = csrEnv(), auth: NodeJS.ProcessEnv = process.env): Promise<Client> {
  let connection: Connection;
  try {
    // TLS, mTLS and API key from the Temporal CLI's variables (TEMPORAL_TLS_CERT, TEMPORAL_API_KEY, ...).
    connection = await Connection.connect({ ...temporalConnectionOptions(env.temporalAddress, auth), connectTimeout: '5s' });
  } catch (error) {
    if (error instanceof TemporalAuthError) throw error;
    throw new Error(
      `no Temporal server answers at ${env.temporalAddress} (${(error as Error).message.split('\n')[0]}); ` +
        (env.externalTemporal ? 'check TEMPORAL_ADDRESS' : 'start the stack with `npx csr up`'),
    );
  }
  return new Client({ connection, namespace: env.namespace });
}
