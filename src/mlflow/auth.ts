/**
 * MLflow credentials as the official client reads them (`MLFLOW_TRACKING_TOKEN`, or
 * `MLFLOW_TRACKING_USERNAME` + `MLFLOW_TRACKING_PASSWORD`), plus `user:pass@` in the tracking URI, which
 * Node's fetch refuses: they become an `Authorization` header, and the URI that is printed, stored in
 * workflow history or handed on carries none of them.
 */

/** The URI without `user:pass@`, and what was there. */
export function splitCredentials(uri: string): { uri: string; username?: string; password?: string } {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return { uri };
  }
  if (!url.username && !url.password) return { uri };
  const username = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  // URL keeps a trailing slash on a bare origin; the callers strip it as before.
  return { uri: url.toString().replace(/\/$/, uri.endsWith('/') ? '/' : ''), username, ...(password ? { password } : {}) };
}

/** For printing: `https://***@host/` where the URI had credentials; unparseable text is hidden whole. */
export function redactUri(uri: string): string {
  try {
    const url = new URL(uri);
    if (!url.username && !url.password) return uri;
    return uri.replace(/\/\/[^/@]*@/, '//***@');
  } catch {
    return /@/.test(uri) ? '<a URI with credentials>' : uri;
  }
}

/** The `Authorization` header for these settings, or none. A token wins over a user, as in MLflow's client. */
export function mlflowAuthHeaders(trackingUri: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  if (env.MLFLOW_TRACKING_TOKEN) return { authorization: `Bearer ${env.MLFLOW_TRACKING_TOKEN}` };
  // The URI may come already stripped (csrEnv strips it); then the credentials are those of
  // MLFLOW_TRACKING_URI, when that names the same server.
  const given = splitCredentials(trackingUri);
  const fromEnv = splitCredentials(env.MLFLOW_TRACKING_URI ?? '');
  const fromUri = given.username || fromEnv.uri.replace(/\/+$/, '') !== given.uri.replace(/\/+$/, '') ? given : fromEnv;
  const username = env.MLFLOW_TRACKING_USERNAME || fromUri.username;
  const password = env.MLFLOW_TRACKING_PASSWORD ?? fromUri.password ?? '';
  if (!username) return {};
  return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
}

/**
 * Credentials of `MLFLOW_TRACKING_URI`'s `user:pass@` as the official client's variables, for the
 * compute processes a worker starts (their MLflow client gets the credential-free URI from the workflow).
 */
export function credentialVariables(env: NodeJS.ProcessEnv): Record<string, string> {
  const { username, password } = splitCredentials(env.MLFLOW_TRACKING_URI ?? '');
  if (!username || env.MLFLOW_TRACKING_USERNAME || env.MLFLOW_TRACKING_TOKEN) return {};
  return { MLFLOW_TRACKING_USERNAME: username, ...(password ? { MLFLOW_TRACKING_PASSWORD: password } : {}) };
}
