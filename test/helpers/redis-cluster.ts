import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** A Redis Cluster node as REDIS_CLUSTER_NODES lists it. */
export interface ClusterNode {
  host: string;
  port: number;
}

/** Returns why a local cluster cannot start, or null when both programs run. */
export function redisClusterUnavailable(): string | null {
  for (const program of ['redis-server', 'redis-cli']) {
    const result = spawnSync(program, ['--version'], { encoding: 'utf8' });
    if (result.error !== undefined || result.status !== 0) {
      return `${program} is not on PATH (install the redis-server package to run this test)`;
    }
  }
  return null;
}

/** Resolves true when `port` on 127.0.0.1 accepts a listener right now. */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * Returns a loopback port P for which P and P + 10000 are free. Redis Cluster
 * nodes listen on P for clients and on P + 10000 for the cluster bus.
 */
async function freeNodePort(taken: Set<number>): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 25_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) return port;
  }
  throw new Error('found no free loopback port pair P, P + 10000 for a cluster node');
}

/** Runs redis-cli against one node and returns its output. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A Redis Cluster of six local redis-server processes, three masters with
 * one replica each, on loopback ports picked at start and with its files in
 * a temporary folder.
 */
export class LocalRedisCluster {
  readonly ports: number[] = [];
  readonly directory = mkdtempSync(join(tmpdir(), 'whk-redis-cluster-'));
  private readonly processes = new Map<number, ChildProcess>();
  private readonly output = new Map<number, string>();

  /** Starts the six nodes, joins them into a cluster and waits for cluster_state:ok. */
  async start(): Promise<void> {
    const taken = new Set<number>();
    for (let index = 0; index < 6; index++) {
      const port = await freeNodePort(taken);
      taken.add(port);
      taken.add(port + 10_000);
      this.ports.push(port);
    }
    for (const port of this.ports) this.startNode(port);
    for (const port of this.ports) {
      await waitUntil(
        async () => (await redisCli(port, 'PING')).trim() === 'PONG',
        10_000,
        `redis-server on port ${port} to answer PING (output: ${this.output.get(port) ?? ''})`,
      );
    }
    await execFileAsync('redis-cli', [
      '--cluster',
      'create',
      ...this.ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ]);
    for (const port of this.ports) {
      await waitUntil(
        async () => (await redisCli(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'),
        30_000,
        `cluster_state:ok on port ${port}`,
      );
    }
    await waitUntil(
      async () => (await this.masters()).length === 3,
      30_000,
      'three masters in CLUSTER NODES',
    );
  }

  /**
   * Starts one node under `sh`, which kills it when its standard input
   * closes: on stop(), and also when this process dies without cleaning up.
   */
  private startNode(port: number): void {
    const child = spawn(
      'sh',
      [
        '-c',
        'redis-server "$@" & server=$!; read -r _; kill -9 "$server"; wait "$server"',
        'sh',
        '--port', String(port),
        '--cluster-enabled', 'yes',
        '--cluster-config-file', join(this.directory, `nodes-${port}.conf`),
        '--cluster-node-timeout', '2000',
        '--save', '',
        '--appendonly', 'no',
        '--dir', this.directory,
        '--bind', '127.0.0.1',
        '--daemonize', 'no',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.output.set(port, '');
    const keep = (chunk: Buffer) => {
      // The last 4 KB are enough to explain a failed start.
      this.output.set(port, `${this.output.get(port) ?? ''}${chunk.toString()}`.slice(-4_096));
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('exit', () => this.processes.delete(port));
    this.processes.set(port, child);
  }

  /**
   * Returns the masters, ordered by port, as CLUSTER NODES lists them on the
   * first node that replies. A node stopped with SHUTDOWN is skipped.
   */
  async masters(): Promise<ClusterNode[]> {
    let nodes: string | undefined;
    for (const port of this.ports) {
      nodes = await redisCli(port, 'CLUSTER', 'NODES').catch(() => undefined);
      if (nodes !== undefined) break;
    }
    if (nodes === undefined) throw new Error('no node of the cluster replied to CLUSTER NODES');
    return nodes
      .split('\n')
      .map((line) => line.split(' '))
      .filter((fields) => {
        const flags = fields[2]?.split(',') ?? [];
        return flags.includes('master') && !flags.includes('fail') && fields[7] === 'connected';
      })
      .map((fields) => {
        const address = fields[1]!.split('@')[0]!;
        const separator = address.lastIndexOf(':');
        return { host: address.slice(0, separator), port: Number(address.slice(separator + 1)) };
      })
      .sort((a, b) => a.port - b.port);
  }

  /** Returns the output of one node's server process, for failure messages. */
  nodeOutput(port: number): string {
    return this.output.get(port) ?? '';
  }

  /** Kills every node that is still running and removes the temporary folder. */
  async stop(): Promise<void> {
    const exits = [...this.processes.values()].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.stdin?.end();
        }),
    );
    await Promise.all(exits);
    rmSync(this.directory, { recursive: true, force: true });
  }
}
