import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
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
  /** The Retry-After header as the receiver sent it, if it sent one. */
  retryAfterHeader?: string;
  /** The Location header of a 3xx response, kept for the log and never followed. */
  location?: string;
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
 * Sends delivery requests, exactly one HTTP request per call. got's own
 * retries are off, because retries belong to the queue with one attempt row
 * each. Redirects are not followed: a 3xx is a failed attempt, and following
 * one could reach an address the guard refuses. The timeout covers
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
      // Node's Agent (checked on Node 20) closes an idle socket after
      // `timeout` ms, or 1 s before the server's `Keep-Alive: timeout=N`
      // when that is shorter. 4 s is below the common 5 s server idle
      // timeout (Node's keepAliveTimeout default), so that we rarely write
      // to a socket that a receiver without that header is closing. On a
      // socket in use the timeout only emits an event, and got's own timers
      // end the attempt.
      timeout: Math.min(options.attemptTimeoutMs, 4_000),
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

  /** Sends one POST and resolves with its outcome; receiver and network errors become outcomes, not exceptions. */
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
      let location: string | undefined;
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
        responseBody: decodeResponseBody(Buffer.concat(chunks), limit),
        unreachableReason: null,
        retryAfterHeader: retryAfter,
        location,
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
        if (status >= 300 && status < 400) location = response.headers.location;
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
    // never gets them. They are checked here instead.
    if (isIP(host) === 0) return null;
    const reason = this.options.guard.refusalReason(host);
    return reason === null ? null : `refused to connect: ${reason}`;
  }
}

/**
 * Decodes a response body for the attempt row. Invalid UTF-8 becomes U+FFFD
 * and so does U+0000, which PostgreSQL text cannot store. Replacement
 * characters take more bytes than the bytes they replace, so the text is
 * cut again to `limit` UTF-8 bytes, at a character boundary.
 */
export function decodeResponseBody(bytes: Buffer, limit: number): string {
  const text = bytes.toString('utf8').replaceAll('\u0000', '\uFFFD');
  const encoded = Buffer.from(text, 'utf8');
  if (encoded.length <= limit) return text;
  // StringDecoder holds back a character cut in half instead of replacing it.
  return new StringDecoder('utf8').write(encoded.subarray(0, limit));
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
