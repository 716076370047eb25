import http from 'node:http';
import { readFileSync } from 'node:fs';

/** A response read in full, with the time from sending the request to its last byte. */
export interface TimedResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  elapsedMs: number;
}

/**
 * Sends one request on a connection of its own that closes afterwards
 * (no keep-alive pool), so that a test can count the server's open
 * sockets. Rejects when no complete response arrives within `timeoutMs`.
 */
export function plainRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<TimedResponse> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(chunks).toString('utf8'),
            elapsedMs: performance.now() - started,
          }),
        );
        response.on('error', reject);
      },
    );
    request.setTimeout(options.timeoutMs ?? 10_000, () =>
      request.destroy(new Error(`${options.method ?? 'GET'} ${url} got no complete response within ${options.timeoutMs ?? 10_000} ms`)),
    );
    request.on('error', reject);
    request.end();
  });
}

/**
 * Counts established TCP connections whose local port is `port` on this
 * machine, from /proc/net/tcp and /proc/net/tcp6 (Linux only): the server
 * side of every connection to a loopback server on that port.
 */
export function establishedConnections(port: number): number {
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4) continue;
      const localPort = parseInt(fields[1]!.split(':')[1]!, 16);
      // State 01 is TCP_ESTABLISHED.
      if (localPort === port && fields[3] === '01') count += 1;
    }
  }
  return count;
}

/** Returns the resident set size of a process in bytes, from /proc (Linux only). */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS line in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}
