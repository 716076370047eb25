import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/**
 * Function from a webhook-id to the number of verified requests with that id
 * that the receiver fails before it responds 200 (0 for never).
 */
export type FailurePlan = (webhookId: string) => number;

/** Counters of one receiver, for the demo's checks and table. */
export interface ReceiverStats {
  requests: number;
  signaturesPassed: number;
  signaturesFailed: number;
  /** Requests that got a planned 5xx response after the signature verified. */
  plannedFailures: number;
  /** Event id and SHA-256 of `data` for each webhook-id that got a 200 response. */
  readonly delivered: Map<string, { eventId: string; dataSha256: string }>;
  /** 200 responses to a webhook-id that had already got one. */
  repeatedSuccesses: number;
}

/**
 * A loopback HTTP server standing in for a customer's endpoint. It checks
 * every request with the `standardwebhooks` package, independently of our
 * signing code, and responds 401 when the check fails.
 */
export class VerifyingReceiver {
  readonly stats: ReceiverStats = {
    requests: 0,
    signaturesPassed: 0,
    signaturesFailed: 0,
    plannedFailures: 0,
    delivered: new Map(),
    repeatedSuccesses: 0,
  };
  private readonly server: http.Server;
  private readonly verifiedRequestsById = new Map<string, number>();
  private verifier: Webhook | null = null;
  private port = 0;

  constructor(
    readonly name: string,
    private readonly failurePlan: FailurePlan = () => 0,
  ) {
    this.server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const { status, headers } = this.handle(request.headers, Buffer.concat(chunks));
        response.writeHead(status, headers);
        response.end();
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Endpoint URL to register, such as `http://127.0.0.1:41234/webhooks`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/webhooks/${this.name}`;
  }

  /** Sets the `whsec_` secret that the API returned when it created the receiver. */
  useSecret(secret: string): void {
    this.verifier = new Webhook(secret);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(
    headers: http.IncomingHttpHeaders,
    body: Buffer,
  ): { status: number; headers: Record<string, string> } {
    this.stats.requests++;
    const webhookId = headerValue(headers, 'webhook-id');
    let payload: unknown;
    try {
      if (this.verifier === null) throw new Error('secret not set');
      payload = this.verifier.verify(body.toString('utf8'), {
        'webhook-id': webhookId,
        'webhook-timestamp': headerValue(headers, 'webhook-timestamp'),
        'webhook-signature': headerValue(headers, 'webhook-signature'),
      });
    } catch {
      this.stats.signaturesFailed++;
      return { status: 401, headers: {} };
    }
    this.stats.signaturesPassed++;

    const verifiedRequests = (this.verifiedRequestsById.get(webhookId) ?? 0) + 1;
    this.verifiedRequestsById.set(webhookId, verifiedRequests);
    if (verifiedRequests <= this.failurePlan(webhookId)) {
      this.stats.plannedFailures++;
      // The first failure sends Retry-After: 1 (second), which the delivery
      // worker clamps into its schedule. A second failure is a plain 500.
      return verifiedRequests === 1
        ? { status: 503, headers: { 'retry-after': '1' } }
        : { status: 500, headers: {} };
    }

    if (this.stats.delivered.has(webhookId)) {
      this.stats.repeatedSuccesses++;
    } else {
      const envelope = payload as { event_id?: unknown; data?: unknown };
      this.stats.delivered.set(webhookId, {
        eventId: String(envelope.event_id),
        dataSha256: sha256(JSON.stringify(envelope.data)),
      });
    }
    return { status: 200, headers: {} };
  }
}

/**
 * Returns the failure plan of the demo's flaky receiver. Every delivery fails
 * its first try, and about a third fail the second try too. A hash of the
 * webhook-id picks that third, so every try of one delivery gets the same plan.
 */
export function failFirstTries(webhookId: string): number {
  const firstByte = createHash('sha256').update(webhookId).digest()[0]!;
  return firstByte % 3 === 0 ? 2 : 1;
}

/** Returns the hex SHA-256 of a string's UTF-8 bytes. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function headerValue(headers: http.IncomingHttpHeaders, name: string): string {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}
