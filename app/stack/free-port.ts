/**
 * Ask the OS for a free TCP port. Binding port 0 and reading back the port the kernel chose is a few
 * lines of `node:net`; a package for it (get-port & co.) would add a dependency for no gain.
 */
import * as net from 'node:net';

/**
 * A TCP port on `host` that nothing listens on right now.
 *
 * The port is released before this returns, so another process can take it in between; callers
 * that start a server on it should treat "address in use" as a reason to ask again.
 * @param host - Interface to probe. @default '127.0.0.1'
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : undefined;
      server.close(() =>
        port === undefined ? reject(new Error(`could not read the port bound on ${host}`)) : resolve(port),
      );
    });
  });
}

/**
 * True if a listener could bind `host:port` now (so nothing else holds it).
 * @param host - Interface to probe. @default '127.0.0.1'
 */
export function portFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE' || error.code === 'EACCES') resolve(false);
      else reject(error);
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
