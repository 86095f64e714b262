// The tests' own in-process HTTP servers (simulations, instrumented wires): on a free
// loopback port, and stopped together with every connection they hold.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens on a free port of a loopback address; resolves with the port. */
export async function listenOnLoopback(server: http.Server, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

/** Closes the server and its connections, idle or busy, so nothing is left hanging. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}
