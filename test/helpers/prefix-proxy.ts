import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A loopback HTTP reverse proxy that forwards requests under `prefix` to
 * `target` with the prefix removed, as a proxy that publishes a service
 * under a sub-path does. Other paths get 404 from the proxy itself.
 */
export class PrefixProxy {
  private readonly server: http.Server;
  private listenPort = 0;

  constructor(
    private readonly prefix: string,
    target: string,
  ) {
    const upstream = new URL(target);
    if (upstream.hostname !== '127.0.0.1') {
      throw new Error(`target must be on 127.0.0.1, got "${target}"`);
    }
    this.server = http.createServer((request, response) => {
      const url = request.url ?? '/';
      if (url !== prefix && !url.startsWith(`${prefix}/`)) {
        response.writeHead(404, { 'content-type': 'text/plain' });
        response.end(`proxy: no route for ${url}\n`);
        return;
      }
      const forwarded = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: request.method,
          path: url.slice(prefix.length) || '/',
          headers: { ...request.headers, host: upstream.host, 'x-forwarded-prefix': prefix },
        },
        (upstreamResponse) => {
          response.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
          upstreamResponse.pipe(response);
        },
      );
      forwarded.on('error', (error) => {
        response.writeHead(502, { 'content-type': 'text/plain' });
        response.end(`proxy: ${error.message}\n`);
      });
      request.pipe(forwarded);
    });
  }

  /** Listens on a free loopback port and returns the proxy's base URL. */
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.listenPort = (this.server.address() as AddressInfo).port;
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${this.listenPort}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
