import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { RecordedRequest } from './receiver-harness.js';

/**
 * Writes the response to request number `index` (0-based) by hand, for
 * behaviour that ReceiverHarness cannot express: stalled or streamed bodies
 * and responses sent at a chosen moment.
 */
export type ScriptedHandler = (
  request: RecordedRequest,
  response: http.ServerResponse,
  index: number,
) => void;

/**
 * A loopback HTTP server that records every request like ReceiverHarness
 * and counts the sockets that are still open.
 */
export class ScriptedReceiver {
  readonly requests: RecordedRequest[] = [];
  /** Number of TCP connections accepted so far. */
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: http.Server;
  private port = 0;

  constructor(private readonly handler: ScriptedHandler) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const recorded: RecordedRequest = {
          arrivedAt: Date.now(),
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body,
          bodySha256: createHash('sha256').update(body).digest('hex'),
        };
        const index = this.requests.push(recorded) - 1;
        this.handler(recorded, res, index);
      });
    });
    this.server.on('connection', (socket: Socket) => {
      this.connections += 1;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Number of client sockets that are connected right now. */
  openSockets(): number {
    return this.sockets.size;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
