/** Waiting for a server to answer: TCP connect for gRPC, HTTP GET for HTTP servers. */
import * as net from 'node:net';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** True if something accepts TCP connections at host:port. */
export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** True if GET url answers with a 2xx status. */
export async function httpOk(url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * Poll `probe` until it is true or `timeoutMs` passes; `stillStarting` lets the caller stop early
 * when the process it waits for has died (the error then points at its log).
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; stillStarting?: () => boolean; logFile?: string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    if (options.stillStarting && !options.stillStarting()) {
      throw new Error(`${what} exited while starting${options.logFile ? `; see ${options.logFile}` : ''}`);
    }
    await sleep(250);
  }
  throw new Error(
    `${what} did not answer within ${options.timeoutMs / 1000}s${options.logFile ? `; see ${options.logFile}` : ''}`,
  );
}
