import net from 'node:net';

export interface TcpProxyOptions {
  /** Where the proxy forwards to; it must be a loopback address. */
  targetHost: string;
  targetPort: number;
  /**
   * Returns the delay in ms for the next chunk that the target sends back.
   * Chunks of one connection still arrive in order, so a short delay after
   * a long one waits for the long one.
   */
  serverChunkDelayMs?: () => number;
}

interface ProxiedPair {
  client: net.Socket;
  upstream: net.Socket;
}

/**
 * A loopback TCP proxy that tests put between a role and PostgreSQL. It can
 * delay what the server sends and can cut every connection and refuse new
 * ones (`cut`) until `restore`, like a server that stopped and came back.
 */
export class TcpProxy {
  /** Connections accepted so far. */
  accepted = 0;
  private server: net.Server | undefined;
  private listenPort = 0;
  private readonly pairs = new Set<ProxiedPair>();

  constructor(private readonly options: TcpProxyOptions) {
    if (!isLoopback(options.targetHost)) {
      throw new Error(`targetHost must be a loopback address, got "${options.targetHost}"`);
    }
  }

  /** Listens on a free loopback port and returns it. */
  async start(): Promise<number> {
    await this.listen(0);
    return this.listenPort;
  }

  get port(): number {
    return this.listenPort;
  }

  /** Rewrites a connection URL so that it goes through the proxy. */
  proxiedUrl(url: string): string {
    const proxied = new URL(url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(this.listenPort);
    return proxied.toString();
  }

  /** Number of proxied connections that are open right now. */
  openConnections(): number {
    return this.pairs.size;
  }

  /**
   * Destroys every proxied connection on both sides and stops listening, so
   * that new connections are refused until `restore`.
   */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.pairs.clear();
    if (server !== undefined) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  /** Listens again on the same port after `cut`. */
  async restore(): Promise<void> {
    if (this.server !== undefined) return;
    await this.listen(this.listenPort);
  }

  async stop(): Promise<void> {
    await this.cut();
  }

  private async listen(port: number): Promise<void> {
    const server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.listenPort = (server.address() as net.AddressInfo).port;
  }

  private accept(client: net.Socket): void {
    // A connection that raced with `cut` is reset, as the cut ones were.
    if (this.server === undefined) {
      client.resetAndDestroy();
      return;
    }
    this.accepted += 1;
    const upstream = net.connect(this.options.targetPort, this.options.targetHost);
    const pair: ProxiedPair = { client, upstream };
    this.pairs.add(pair);
    const close = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);

    client.pipe(upstream);
    const delay = this.options.serverChunkDelayMs;
    if (delay === undefined) {
      upstream.pipe(client);
      upstream.on('close', close);
      return;
    }
    const queue = new DelayedWriter(client, delay);
    upstream.on('data', (chunk: Buffer) => queue.push(chunk));
    upstream.on('close', () => queue.endAfterFlush(close));
  }
}

/**
 * Writes chunks to a socket, each after its own random delay, keeping their
 * order: a chunk is written no earlier than the chunk before it.
 */
class DelayedWriter {
  private readonly queue: { dueAt: number; chunk: Buffer }[] = [];
  private lastDueAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private onFlushed: (() => void) | undefined;

  constructor(
    private readonly socket: net.Socket,
    private readonly delayMs: () => number,
  ) {}

  push(chunk: Buffer): void {
    const dueAt = Math.max(Date.now() + this.delayMs(), this.lastDueAt);
    this.lastDueAt = dueAt;
    this.queue.push({ dueAt, chunk });
    this.schedule();
  }

  endAfterFlush(callback: () => void): void {
    this.onFlushed = callback;
    if (this.queue.length === 0) callback();
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const head = this.queue[0];
    if (head === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.drain();
    }, Math.max(0, head.dueAt - Date.now()));
  }

  private drain(): void {
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.dueAt <= now) {
      const { chunk } = this.queue.shift()!;
      if (!this.socket.destroyed) this.socket.write(chunk);
    }
    if (this.queue.length === 0 && this.onFlushed !== undefined) {
      this.onFlushed();
      return;
    }
    this.schedule();
  }
}

function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost' || bare === '::1') return true;
  return net.isIPv4(bare) && bare.startsWith('127.');
}
