import type { LookupAddress, lookup } from 'node:dns';
import { isIP } from 'node:net';

/** Addresses that a stubbed name resolves to, or the error code it fails with. */
export type StubAnswer = string[] | { error: 'ENOTFOUND' | 'EAI_AGAIN' };

/**
 * Creates a DNS lookup that resolves names from a fixed table and never
 * sends a query. Names missing from the table fail with ENOTFOUND.
 * `queries` lists every name looked up, in order.
 */
export function stubDnsLookup(table: Record<string, StubAnswer>): {
  lookup: typeof lookup;
  queries: string[];
} {
  const queries: string[] = [];
  function stubLookup(hostname: string, options: unknown, callback?: unknown) {
    const done = (typeof options === 'function' ? options : callback) as (
      error: NodeJS.ErrnoException | null,
      address?: string | LookupAddress[],
      family?: number,
    ) => void;
    const all = typeof options === 'object' && options !== null && 'all' in options
      ? Boolean((options as { all?: boolean }).all)
      : false;
    queries.push(hostname);
    const answer = table[hostname.toLowerCase()] ?? { error: 'ENOTFOUND' };
    process.nextTick(() => {
      if (!Array.isArray(answer)) {
        const error: NodeJS.ErrnoException = new Error(
          `getaddrinfo ${answer.error} ${hostname}`,
        );
        error.code = answer.error;
        error.syscall = 'getaddrinfo';
        return done(error);
      }
      const addresses = answer.map((address) => ({ address, family: isIP(address) }));
      if (all) return done(null, addresses);
      const first = addresses[0]!;
      done(null, first.address, first.family);
    });
  }
  return { lookup: stubLookup as unknown as typeof lookup, queries };
}
