import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the harness received it. */
export interface RecordedRequest {
  arrivedAt: number;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  bodySha256: string;
}

/**
 * Decides the response to request number `index` (0-based). Returning
 * 'hang' never answers; the harness closes such sockets when it stops.
 */
export type Responder = (
  request: RecordedRequest,
  index: number,
) =>
  | { status: number; body?: string; headers?: Record<string, string> }
  | 'hang';

/** A loopback HTTP server that records every request it receives. */
export class ReceiverHarness {
  readonly requests: RecordedRequest[] = [];
  private server: http.Server;
  private port = 0;

  constructor(private responder: Responder = () => ({ status: 200, body: 'ok' })) {
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
        const answer = this.responder(recorded, index);
        if (answer === 'hang') return;
        res.writeHead(answer.status, answer.headers ?? {});
        res.end(answer.body ?? '');
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** The endpoint URL to register, such as `http://127.0.0.1:41234/hook`. */
  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  respondWith(responder: Responder): void {
    this.responder = responder;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
