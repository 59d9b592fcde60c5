/**
 * Map a run's `artifact_uri` to the URL path of the tracking server's artifact proxy
 * (`/api/2.0/mlflow-artifacts/artifacts/<experiment>/<run>/artifacts/...`), the only artifact route
 * that needs no storage credentials on the client.
 */

/** Path prefix of the artifact proxy that `mlflow server --serve-artifacts` mounts. */
export const ARTIFACT_PROXY_PREFIX = '/api/2.0/mlflow-artifacts/artifacts';

/**
 * The proxy-relative root of a run's artifacts, e.g. `1/<run-id>/artifacts` for
 * `mlflow-artifacts:/1/<run-id>/artifacts`.
 */
export function proxyRoot(artifactUri: string, runId: string): string {
  let url: URL;
  try {
    url = new URL(artifactUri);
  } catch {
    url = new URL(`file://${artifactUri}`);
  }
  let root: string | undefined;
  if (url.protocol === 'mlflow-artifacts:') {
    root = url.pathname;
  } else if ((url.protocol === 'http:' || url.protocol === 'https:') && url.pathname.includes(ARTIFACT_PROXY_PREFIX)) {
    root = url.pathname.slice(url.pathname.indexOf(ARTIFACT_PROXY_PREFIX) + ARTIFACT_PROXY_PREFIX.length);
  }
  if (root === undefined) {
    throw new Error(
      `run ${runId} keeps its artifacts at ${artifactUri}, which the tracking server does not proxy; ` +
        'start the server with --serve-artifacts and without a --default-artifact-root outside it ' +
        '(experiments created before keep their old location: use a new experiment)',
    );
  }
  return root.replace(/^\/+|\/+$/g, '');
}

/** Check an artifact path (`plots/loss.png`) and encode it segment by segment for a URL. */
export function encodeArtifactPath(artifactPath: string): string {
  const segments = artifactPath.split('/').filter((segment) => segment !== '');
  if (artifactPath.startsWith('/') || segments.some((segment) => segment === '..' || segment === '.')) {
    throw new TypeError(
      `artifact path: expected a relative path without . or .. segments, got ${JSON.stringify(artifactPath)}`,
    );
  }
  if (segments.length === 0) throw new TypeError('artifact path: expected a file name, got an empty path');
  return segments.map(encodeURIComponent).join('/');
}
