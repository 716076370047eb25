import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import got, { type Got } from 'got';
import type { NetworkGuard } from '../../shared/network-guard.js';

/** The result of one HTTP try, in the shape of an attempt row. */
export interface AttemptOutcome {
  result:
    | 'succeeded'
    | 'failed_http_error'
    | 'failed_unreachable'
    | 'failed_timeout';
  responseStatus: number | null;
  responseDurationMs: number | null;
  responseBody: string | null;
  unreachableReason: string | null;
  /** Retry-After of a 429 or 503, in ms, when the receiver sent one. */
  retryAfterHeader?: string;
}

export interface HttpSenderOptions {
  connectTimeoutMs: number;
  attemptTimeoutMs: number;
  responseBodyLimitBytes: number;
  guard: NetworkGuard;
  userAgent?: string;
  /** Lookup used for host names; tests pass a stub. */
  dnsLookup?: typeof import('node:dns').lookup;
  maxSockets?: number;
}

/**
 * Sends delivery requests. Each call is exactly one HTTP request: got's own
 * retries are off (retries belong to the queue, one attempt row each),
 * redirects are not followed (a 3xx is a failed attempt, and following one
 * could reach an address the guard refuses), and the timeout covers
 * connecting, the headers and the whole body.
 */
export class HttpSender {
  private readonly client: Got;
  private readonly agents: { http: http.Agent; https: https.Agent };

  constructor(private readonly options: HttpSenderOptions) {
    const agentOptions = {
      keepAlive: true,
      maxSockets: options.maxSockets ?? 256,
      maxFreeSockets: 64,
      // Shorter than the usual server keep-alive timeout (5 s in Node), so
      // that we rarely write to a socket that the receiver is closing.
      freeSocketTimeout: 4_000,
      timeout: options.attemptTimeoutMs,
    };
    this.agents = {
      http: new http.Agent(agentOptions),
      https: new https.Agent(agentOptions),
    };
    this.client = got.extend({
      retry: { limit: 0 },
      followRedirect: false,
      throwHttpErrors: false,
      decompress: true,
      agent: this.agents,
      dnsLookup: options.guard.guardedLookup(options.dnsLookup),
      timeout: {
        connect: options.connectTimeoutMs,
        request: options.attemptTimeoutMs,
      },
    });
  }

  /** Sends one POST and returns its outcome; never throws for a bad receiver. */
  send(
    endpoint: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<AttemptOutcome> {
    const refusal = this.refuseLiteralAddress(endpoint);
    if (refusal !== null) return Promise.resolve(unreachable(refusal));
    const limit = this.options.responseBodyLimitBytes;
    const started = performance.now();

    return new Promise<AttemptOutcome>((resolve) => {
      let status: number | null = null;
      let retryAfter: string | undefined;
      const chunks: Buffer[] = [];
      let kept = 0;
      let settled = false;

      const stream = this.client.stream.post(endpoint, {
        body,
        headers: {
          'content-type': 'application/json',
          'user-agent': this.options.userAgent ?? 'webhook-deliverator/0.1',
          ...headers,
        },
      });
      const answered = (): AttemptOutcome => ({
        result: status! >= 200 && status! < 300 ? 'succeeded' : 'failed_http_error',
        responseStatus: status,
        responseDurationMs: Math.round(performance.now() - started),
        responseBody: Buffer.concat(chunks).toString('utf8'),
        unreachableReason: null,
        retryAfterHeader: retryAfter,
      });
      const finish = (outcome: AttemptOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(backstop);
        // Destroying the request also drops a body we stopped reading, so a
        // receiver that streams without end cannot hold the socket.
        stream.destroy();
        resolve(outcome);
      };
      // got enforces the same limit; this timer only guards against a path
      // where got's timer does not fire.
      const backstop = setTimeout(
        () => finish(timedOut()),
        this.options.attemptTimeoutMs + 250,
      );

      stream.on('response', (response: http.IncomingMessage) => {
        status = response.statusCode ?? 0;
        const header = response.headers['retry-after'];
        retryAfter = Array.isArray(header) ? header[0] : header;
        if (limit === 0) finish(answered());
      });
      stream.on('data', (chunk: Buffer) => {
        const room = limit - kept;
        chunks.push(room < chunk.length ? chunk.subarray(0, room) : chunk);
        kept += Math.min(room, chunk.length);
        if (kept >= limit) finish(answered());
      });
      stream.on('end', () => {
        if (status !== null) finish(answered());
      });
      stream.on('error', (error: Error & { code?: string }) => {
        finish(classifyError(error));
      });
    });
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private refuseLiteralAddress(endpoint: string): string | null {
    let host: string;
    try {
      host = new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
    } catch {
      return `invalid endpoint URL "${endpoint}"`;
    }
    // Node skips the DNS lookup for literal addresses, so the guarded lookup
    // never sees them; they are checked here instead.
    if (isIP(host) === 0) return null;
    const reason = this.options.guard.refusalReason(host);
    return reason === null ? null : `refused to connect: ${reason}`;
  }
}

function unreachable(reason: string): AttemptOutcome {
  return {
    result: 'failed_unreachable',
    responseStatus: null,
    responseDurationMs: null,
    responseBody: null,
    unreachableReason: reason,
  };
}

function timedOut(): AttemptOutcome {
  return {
    result: 'failed_timeout',
    responseStatus: null,
    responseDurationMs: null,
    responseBody: null,
    unreachableReason: null,
  };
}

function classifyError(error: Error & { code?: string }): AttemptOutcome {
  if (error.name === 'TimeoutError' || error.code === 'ETIMEDOUT') {
    return timedOut();
  }
  const code = error.code ? `${error.code}: ` : '';
  return unreachable(`${code}${error.message}`.slice(0, 1000));
}
