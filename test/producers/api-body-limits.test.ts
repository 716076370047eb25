// Big, compressed and slow request bodies get a response or a closed socket
// quickly, the API process does not buffer them, and its connections go
// back to idle afterwards. The API runs as a process of its own, so that
// its memory can be read from /proc.
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { establishedConnections, residentBytes } from '../helpers/plain-http.js';
import { RoleProcess, roleEnvironment } from '../helpers/role-process.js';
import { countRows } from '../helpers/row-counts.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

const MIB = 1024 * 1024;
const REQUEST_TIMEOUT_MS = 3_000;

let env: TestEnv;
let api: RoleProcess;
let apiUrl: URL;
let idleConnections: number;

beforeAll(async () => {
  env = await createTestEnv();
  api = new RoleProcess(
    'api',
    roleEnvironment(
      { databaseUrl: env.databaseUrl, redisUrl: env.redisUrl, queuePrefix: env.queuePrefix },
      { API_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
    ),
  );
  apiUrl = new URL((await api.started()).url as string);
  idleConnections = establishedConnections(Number(apiUrl.port));
});

afterAll(async () => {
  await api?.stop();
  await env?.dispose();
});

/** How a raw request ended: with a response, or with a socket error or close before one. */
interface RawOutcome {
  status: number | null;
  body: string;
  error: string | null;
  elapsedMs: number;
  bytesWritten: number;
}

/**
 * Sends POST /v1/events with `headers`, then calls `write` until it returns
 * false or the request ends. Resolves once a response arrived in full or
 * the socket failed.
 */
function sendBody(
  headers: Record<string, string>,
  write: (request: http.ClientRequest, written: number) => Buffer | null,
  writeIntervalMs = 0,
): Promise<RawOutcome> {
  const started = performance.now();
  let bytesWritten = 0;
  let finished = false;
  return new Promise((resolve) => {
    const done = (outcome: Omit<RawOutcome, 'elapsedMs' | 'bytesWritten'>) => {
      if (finished) return;
      finished = true;
      clearTimeout(writer);
      resolve({ ...outcome, elapsedMs: performance.now() - started, bytesWritten });
      request.destroy();
    };
    const request = http.request(apiUrl, { method: 'POST', path: '/v1/events', headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        done({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), error: null }),
      );
      response.on('error', (error) => done({ status: response.statusCode ?? 0, body: '', error: error.message }));
    });
    request.on('error', (error) => done({ status: null, body: '', error: error.message }));
    request.on('close', () => done({ status: null, body: '', error: 'socket closed' }));
    let writer: NodeJS.Timeout | undefined;
    const pump = () => {
      while (!finished) {
        const chunk = write(request, bytesWritten);
        if (chunk === null) {
          request.end();
          return;
        }
        bytesWritten += chunk.length;
        const more = request.write(chunk);
        if (writeIntervalMs > 0) {
          writer = setTimeout(pump, writeIntervalMs);
          return;
        }
        if (!more) {
          request.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

async function expectBackToIdle() {
  await waitFor(() => establishedConnections(Number(apiUrl.port)) <= idleConnections, {
    timeoutMs: 5_000,
    message: `API connections to fall back to ${idleConnections}`,
  });
}

describe('POST /v1/events body limits', () => {
  test('50 MB chunked body gets 413', async () => {
    const before = await countRows(env.pool);
    const rssBefore = residentBytes(api.pid!);
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const total = 50 * MIB;
    const outcome = await sendBody(
      { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      (_request, written) => {
        if (written === 0) return Buffer.from('{"event_class":"big.body","data":"');
        return written < total ? chunk : null;
      },
    );
    expect(outcome.elapsedMs).toBeLessThan(2_000);
    // Either the response came before the whole body was written, or the
    // server closed the socket, which fails the write.
    if (outcome.status !== null) {
      expect(outcome.status).toBe(413);
      expect(JSON.parse(outcome.body).error.code).toBe('payload_too_large');
      expect(outcome.bytesWritten).toBeLessThan(total);
    } else {
      expect(outcome.error).not.toBeNull();
    }
    expect(residentBytes(api.pid!) - rssBefore).toBeLessThan(20 * MIB);
    expect(await countRows(env.pool)).toEqual(before);
    await expectBackToIdle();
  });

  test('gzip body gets 415', async () => {
    const before = await countRows(env.pool);
    const rssBefore = residentBytes(api.pid!);
    // About 20 KB on the wire that expand to 20 MB of JSON.
    const body = gzipSync(Buffer.from(`{"event_class":"gzip.body","data":"${'a'.repeat(20 * MIB)}"}`));
    expect(body.length).toBeLessThan(100 * 1024);
    let sent = false;
    const outcome = await sendBody(
      { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': String(body.length) },
      () => {
        if (sent) return null;
        sent = true;
        return body;
      },
    );
    expect(outcome.status).toBe(415);
    const error = JSON.parse(outcome.body).error;
    expect(error.code).toBe('unsupported_media_type');
    expect(error.message).toBe('Content-Encoding: must be absent or identity, got "gzip"; send the body uncompressed');
    expect(residentBytes(api.pid!) - rssBefore).toBeLessThan(30 * MIB);
    expect(await countRows(env.pool)).toEqual(before);
    await expectBackToIdle();
  });

  test('identity encoding is accepted', async () => {
    const body = Buffer.from(JSON.stringify({ event_class: 'plain.body', data: {} }));
    let sent = false;
    const outcome = await sendBody(
      { 'content-type': 'application/json', 'content-encoding': 'identity', 'content-length': String(body.length) },
      () => {
        if (sent) return null;
        sent = true;
        return body;
      },
    );
    expect(outcome.status).toBe(202);
    await expectBackToIdle();
  });

  test('trickled body is cut off', { timeout: 30_000 }, async () => {
    const before = await countRows(env.pool);
    const outcome = await sendBody(
      { 'content-type': 'application/json', 'content-length': '1000' },
      (_request, written) => (written < 1000 ? Buffer.from(' ') : null),
      1_000,
    );
    // The request timeout, plus up to 1 s until the server's next check of
    // its connections, plus slack for a busy machine.
    expect(outcome.elapsedMs).toBeLessThan(REQUEST_TIMEOUT_MS + 4_000);
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    if (outcome.status !== null) expect(outcome.status).toBe(408);
    expect(outcome.bytesWritten).toBeLessThan(1000);
    expect(await countRows(env.pool)).toEqual(before);
    await expectBackToIdle();
  });
});
