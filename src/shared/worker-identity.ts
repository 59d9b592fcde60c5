/**
 * The identity a worker gives Temporal: `<worker>@<host id>/<pid>`. Temporal shows it as the poller of a
 * task queue and on every task a worker takes; the pid tells `csr up` which process a poller belongs to.
 */

/** The identity of worker `name` (`cpu`, `stand-in-0`, `gpu-1`) of process `pid` on host `hostId`. */
export function workerIdentity(name: string, hostId: string, pid: number): string {
  return `${name}@${hostId}/${pid}`;
}

/** The pid in an identity made by {@link workerIdentity}; undefined for any other identity. */
export function identityPid(identity: string): number | undefined {
  const match = /^[^@/]+@[^/]+\/(\d+)$/.exec(identity);
  return match ? Number(match[1]) : undefined;
}
