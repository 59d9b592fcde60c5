/**
 * Task queue names. Plain constants with no imports, so workflow code can use them inside its
 * deterministic sandbox as well.
 */

/** The CPU worker: workflows and light activities. */
export const CPU_QUEUE = 'csr-cpu';

/** Single-GPU compute steps; every GPU worker (and CPU stand-in) polls it with one task slot. */
export const GPU_QUEUE = 'csr-gpu';

/** The queue of one host's multi-GPU worker, which claims several GPUs of that host at once. */
export function hostQueue(hostId: string): string {
  return `csr-host-${hostId}`;
}
