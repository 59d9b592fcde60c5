/**
 * How to reach Temporal securely, from the environment variables the Temporal CLI reads, so that one
 * shell setup serves `temporal` and `csr` alike: TLS (`TEMPORAL_TLS`, `TEMPORAL_TLS_CA`), mTLS
 * (`TEMPORAL_TLS_CERT` + `TEMPORAL_TLS_KEY`, or their `_DATA` forms), an API key (`TEMPORAL_API_KEY`, which
 * turns TLS on unless `TEMPORAL_TLS=false`), and `TEMPORAL_TLS_SERVER_NAME`. One object serves the client
 * (`Connection`) and the workers (`NativeConnection`).
 */
import * as fs from 'node:fs';
import type { TLSConfig } from '@temporalio/client';

/** What both connection kinds accept. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
}

/** A setting that cannot work; the message names the variable. */
export class TemporalAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemporalAuthError';
  }
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return undefined;
  if (['1', 'true', 'yes'].includes(raw)) return true;
  if (['0', 'false', 'no'].includes(raw)) return false;
  throw new TemporalAuthError(`${name}: expected true or false, got ${JSON.stringify(env[name])}`);
}

/** PEM bytes from `NAME_DATA` (inline) or `NAME` (a file path); never both. */
function pem(env: NodeJS.ProcessEnv, name: string): Buffer | undefined {
  const file = env[name];
  const data = env[`${name}_DATA`];
  if (file && data) throw new TemporalAuthError(`${name} and ${name}_DATA: set one of them, not both`);
  if (data) return Buffer.from(data);
  if (!file) return undefined;
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new TemporalAuthError(`${name}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/** Connection options for `address` from the environment; no variable set = a plain connection, as before. */
export function temporalConnectionOptions(address: string, env: NodeJS.ProcessEnv = process.env): TemporalConnectionOptions {
  const cert = pem(env, 'TEMPORAL_TLS_CERT');
  const key = pem(env, 'TEMPORAL_TLS_KEY');
  if (Boolean(cert) !== Boolean(key)) {
    throw new TemporalAuthError('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY: set both (the client certificate and its key) or neither');
  }
  const ca = pem(env, 'TEMPORAL_TLS_CA');
  const serverName = env.TEMPORAL_TLS_SERVER_NAME || undefined;
  const apiKey = env.TEMPORAL_API_KEY || undefined;
  const wanted = flag(env, 'TEMPORAL_TLS');
  // As the Temporal CLI does: any TLS material or an API key means TLS, unless TEMPORAL_TLS=false says otherwise.
  const useTls = wanted ?? Boolean(cert || ca || serverName || apiKey);
  if (!useTls) {
    if (cert || ca || serverName) throw new TemporalAuthError('TEMPORAL_TLS=false contradicts the TEMPORAL_TLS_* settings');
    return { address, ...(apiKey ? { apiKey } : {}) };
  }
  const tls: TLSConfig = {
    ...(cert && key ? { clientCertPair: { crt: cert, key } } : {}),
    ...(ca ? { serverRootCACertificate: ca } : {}),
    ...(serverName ? { serverNameOverride: serverName } : {}),
  };
  return { address, tls, ...(apiKey ? { apiKey } : {}) };
}

/** Which security the options use, for logs: never the key or certificate itself. */
export function describeTemporalSecurity(options: TemporalConnectionOptions): string {
  const parts = [options.tls ? (options.tls.clientCertPair ? 'mTLS' : 'TLS') : 'plaintext'];
  if (options.apiKey) parts.push('API key');
  return parts.join(' + ');
}
