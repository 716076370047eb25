import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { ReceiverBehaviour } from './plan.js';
import type { SeededRandom } from './random.js';

/** One request as the chaos receiver saw it. */
export interface ReceivedRequest {
  /** Index of the receiver in the run's plan, from the request path. */
  receiver: number;
  webhookId: string;
  /** The x-webhook-attempt header. */
  attempt: string;
  /** Date.now() when the whole body had arrived. */
  arrivedAt: number;
  verified: boolean;
  status: number;
  /** True once the whole response was handed to the socket. */
  answered: boolean;
}

interface Registration {
  behaviour: ReceiverBehaviour;
  verifier: Webhook;
}

/** Share of a flaky receiver's requests that fail. */
const FLAKY_FAILURE_RATE = 0.3;

/**
 * One loopback HTTP server that plays every receiver of a chaos
 * run, at `/rx/<index>`. It checks each request's signature with the
 * `standardwebhooks` package, independently of our signing code, responds
 * 401 when the check fails, and records every request.
 */
export class ChaosReceiver {
  readonly requests: ReceivedRequest[] = [];
  private readonly registrations = new Map<number, Registration>();
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly server: http.Server;
  private port = 0;

  constructor(private readonly random: SeededRandom) {
    this.server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => this.handle(request, Buffer.concat(chunks), response));
    });
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Returns the endpoint URL of receiver number `index`. */
  url(index: number): string {
    return `http://127.0.0.1:${this.port}/rx/${index}`;
  }

  /** Sets the behaviour and the `whsec_` secret of receiver number `index`. */
  register(index: number, behaviour: ReceiverBehaviour, secret: string): void {
    this.registrations.set(index, { behaviour, verifier: new Webhook(secret) });
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(request: http.IncomingMessage, body: Buffer, response: http.ServerResponse) {
    const match = /^\/rx\/(\d+)$/.exec(request.url ?? '');
    const index = match ? Number(match[1]) : -1;
    const registration = this.registrations.get(index);
    const webhookId = header(request.headers, 'webhook-id');
    const record: ReceivedRequest = {
      receiver: index,
      webhookId,
      attempt: header(request.headers, 'x-webhook-attempt'),
      arrivedAt: Date.now(),
      verified: false,
      status: 0,
      answered: false,
    };
    this.requests.push(record);
    if (registration === undefined) {
      this.respond(record, response, 404);
      return;
    }
    try {
      registration.verifier.verify(body.toString('utf8'), {
        'webhook-id': webhookId,
        'webhook-timestamp': header(request.headers, 'webhook-timestamp'),
        'webhook-signature': header(request.headers, 'webhook-signature'),
      });
      record.verified = true;
    } catch {
      this.respond(record, response, 401);
      return;
    }
    if (registration.behaviour === 'flaky' && this.random.next() < FLAKY_FAILURE_RATE) {
      this.respond(record, response, this.random.next() < 0.5 ? 500 : 503);
    } else if (registration.behaviour === 'slow') {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.respond(record, response, 200);
      }, this.random.integer(1_000, 3_000));
      this.timers.add(timer);
    } else {
      this.respond(record, response, 200);
    }
  }

  private respond(record: ReceivedRequest, response: http.ServerResponse, status: number) {
    record.status = status;
    // A worker killed mid-request has closed the socket already.
    if (response.destroyed) return;
    response.on('finish', () => {
      record.answered = true;
    });
    response.writeHead(status).end();
  }
}

function header(headers: http.IncomingHttpHeaders, name: string): string {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}
