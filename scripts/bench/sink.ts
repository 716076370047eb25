import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A keep-alive receiver that answers 200 at once and records, per event id,
 * when its first request arrived.
 */
export class BenchSink {
  requests = 0;
  readonly firstArrivalByEvent = new Map<string, number>();
  private readonly server: http.Server;
  private status = 200;

  constructor() {
    this.server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        this.requests++;
        const eventId = req.headers['x-webhook-event-id'];
        if (typeof eventId === 'string' && !this.firstArrivalByEvent.has(eventId)) {
          this.firstArrivalByEvent.set(eventId, Date.now());
        }
        res.writeHead(this.status, { 'content-type': 'text/plain' });
        res.end('ok');
      });
    });
    this.server.keepAliveTimeout = 60_000;
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  answerWith(status: number): void {
    this.status = status;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
