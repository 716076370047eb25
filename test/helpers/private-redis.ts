import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { unusedLoopbackPort } from './unused-port.js';
import { waitFor } from './test-env.js';

/** Returns why no private redis-server can start, or null when the program runs. */
export function redisServerUnavailable(): string | null {
  const result = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) {
    return 'redis-server is not on PATH (install the redis-server package to run this test)';
  }
  return null;
}

/**
 * A redis-server process of the test's own on a loopback port, without
 * persistence, so that a test can kill it and start it again empty, as a
 * Redis restart without persistence does. The shared Redis is never touched.
 */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(readonly port: number) {}

  /** Starts a server on a free loopback port and waits until it replies to PING. */
  static async start(): Promise<PrivateRedis> {
    const server = new PrivateRedis(await unusedLoopbackPort());
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server again on the same port, with no data. */
  async restart(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    this.child = child;
    await waitFor(() => this.ping(), { timeoutMs: 10_000, message: `redis-server on port ${this.port} to start` });
  }

  /** Kills the server with SIGKILL and waits until it has exited. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** Stops the server with SHUTDOWN NOSAVE, as `redis-cli SHUTDOWN NOSAVE` does, and waits until it has exited. */
  async shutdownNoSave(): Promise<void> {
    const client = new Redis(this.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    // The server closes the connection instead of replying.
    await client.call('SHUTDOWN', 'NOSAVE').catch(() => {});
    client.disconnect();
    await this.exited;
  }

  /**
   * Pauses every client of the server for `ms` with CLIENT PAUSE ms ALL, so
   * that connections stay open but no command gets a reply until it ends.
   */
  async pauseAll(ms: number): Promise<void> {
    const client = new Redis(this.url, { maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    try {
      await client.call('CLIENT', 'PAUSE', String(ms), 'ALL');
    } finally {
      client.disconnect();
    }
  }

  /** Returns the number of client connections, this query's own included. */
  async clientCount(): Promise<number> {
    const client = new Redis(this.url, { maxRetriesPerRequest: 0 });
    try {
      const list = (await client.call('CLIENT', 'LIST')) as string;
      return list.split('\n').filter((line) => line.trim() !== '').length;
    } finally {
      client.disconnect();
    }
  }

  private async ping(): Promise<boolean> {
    const client = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      return (await client.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      client.disconnect();
    }
  }
}
