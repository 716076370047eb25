import { createServer } from 'node:net';

/**
 * Returns a loopback TCP port that had no listener a moment ago: the port
 * that the OS picked for a server that was closed at once.
 */
export async function unusedLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error('the probe server has no TCP address');
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}
