import net from 'node:net';

/**
 * A bare TCP listener on a loopback address that only counts the
 * connections it accepts and closes them at once.
 */
export class TcpSentinel {
  accepted = 0;
  private readonly server = net.createServer((socket) => {
    this.accepted += 1;
    socket.destroy();
  });

  constructor(readonly host: '127.0.0.1' | '::1' = '127.0.0.1') {}

  /** Listens on `port`, or on a free port when it is 0, and returns the port. */
  async start(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, this.host, () => resolve());
    });
    return (this.server.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Returns a loopback port that had a listener a moment ago and has none now,
 * so that connecting to it is refused.
 */
export async function closedLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
