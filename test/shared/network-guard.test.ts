import type { lookup as dnsLookup, LookupAddress } from 'node:dns';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetworkGuard } from '../../shared/network-guard.js';

function refusal(address: string): string {
  return `address ${address} is loopback, private, link-local or reserved; add its network to ALLOWED_PRIVATE_NETWORKS to allow it`;
}

const FORBIDDEN: readonly string[] = [
  '127.0.0.1',
  '127.255.255.254',
  '10.0.0.1',
  '10.255.255.255',
  '172.16.0.1',
  '172.31.255.255',
  '192.168.0.1',
  '192.168.255.255',
  '169.254.169.254',
  '169.254.0.1',
  '100.64.0.1',
  '100.127.255.255',
  '224.0.0.1',
  '239.255.255.250',
  '0.0.0.0',
  '255.255.255.255',
  '192.0.2.1',
  '198.18.0.1',
  '::',
  '::1',
  'fc00::1',
  'fd12:3456:789a::1',
  'fe80::1',
  'febf:ffff::1',
  'fe80::1%eth0',
  'ff02::1',
  '2001:db8::1',
  '64:ff9b::a9fe:a9fe',
  '::ffff:127.0.0.1',
  '::ffff:169.254.169.254',
  '::ffff:7f00:1',
  '::ffff:a9fe:a9fe',
  '::ffff:10.0.0.1',
  '0:0:0:0:0:ffff:7f00:1',
];

/** Public addresses, checked as strings only: no test connects to them. */
const PUBLIC: readonly string[] = [
  '8.8.8.8',
  '1.1.1.1',
  '93.184.216.34',
  '11.0.0.1',
  '172.15.255.255',
  '172.32.0.1',
  '100.63.255.255',
  '100.128.0.1',
  '169.253.255.255',
  '192.169.0.1',
  '2606:4700:4700::1111',
  '2001:4860:4860::8888',
  'fbff::1',
  'fe7f::1',
  '::ffff:8.8.8.8',
];

/** A resolver that returns addresses from a fixed table and records the options it received. */
function stubResolver(
  answers: Record<string, LookupAddress[] | NodeJS.ErrnoException>,
) {
  const calls: Array<{ hostname: string; options: unknown }> = [];
  const resolve = (
    hostname: string,
    options: unknown,
    callback: (error: NodeJS.ErrnoException | null, addresses?: LookupAddress[]) => void,
  ) => {
    calls.push({ hostname, options });
    const answer = answers[hostname];
    if (answer === undefined) {
      const missing: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
      missing.code = 'ENOTFOUND';
      callback(missing);
    } else if (answer instanceof Error) {
      callback(answer);
    } else {
      callback(null, answer);
    }
  };
  return { resolve: resolve as unknown as typeof dnsLookup, calls };
}

interface LookupResult {
  error: NodeJS.ErrnoException | null;
  address?: string | LookupAddress[];
  family?: number;
}

/** Calls a lookup function in the form `lookup(hostname, options?, callback)`. */
function callLookup(
  lookup: typeof dnsLookup,
  hostname: string,
  options?: unknown,
): Promise<LookupResult> {
  return new Promise((resolve) => {
    const callback = (
      error: NodeJS.ErrnoException | null,
      address?: string | LookupAddress[],
      family?: number,
    ) => resolve({ error, address, family });
    const untyped = lookup as unknown as (...args: unknown[]) => void;
    if (options === undefined) untyped(hostname, callback);
    else untyped(hostname, options, callback);
  });
}

const ANSWERS = {
  'loopback.example': [{ address: '127.0.0.1', family: 4 }],
  'metadata.example': [{ address: '169.254.169.254', family: 4 }],
  'mapped.example': [{ address: '::ffff:169.254.169.254', family: 6 }],
  'mixed.example': [
    { address: '93.184.216.34', family: 4 },
    { address: '10.0.0.5', family: 4 },
  ],
  'public.example': [
    { address: '93.184.216.34', family: 4 },
    { address: '2606:2800:220:1:248:1893:25c8:1946', family: 6 },
  ],
  'empty.example': [],
};

describe('NetworkGuard.refusalReason', () => {
  const guard = new NetworkGuard();

  it.each(FORBIDDEN)('rejects %s', (address) => {
    expect(guard.refusalReason(address)).toBe(refusal(address));
  });

  it.each(PUBLIC)('allows %s', (address) => {
    expect(guard.refusalReason(address)).toBeNull();
  });

  it('rejects a host name', () => {
    expect(guard.refusalReason('example.com')).toBe(
      '"example.com" is not an IP address',
    );
  });
});

describe('NetworkGuard allow-list', () => {
  const guard = new NetworkGuard(['127.0.0.0/8']);

  it.each(['127.0.0.1', '127.1.2.3', '::ffff:127.0.0.1', '::ffff:7f00:1'])(
    'allows %s',
    (address) => {
      expect(guard.refusalReason(address)).toBeNull();
    },
  );

  it.each(['::1', '10.0.0.1', '169.254.169.254', '192.168.1.1'])(
    'still rejects %s',
    (address) => {
      expect(guard.refusalReason(address)).toBe(refusal(address));
    },
  );

  it('opens an IPv6 range', () => {
    const ipv6 = new NetworkGuard(['::1/128']);
    expect(ipv6.refusalReason('::1')).toBeNull();
    expect(ipv6.refusalReason('127.0.0.1')).toBe(refusal('127.0.0.1'));
  });

  it('opens only the given subnet', () => {
    const subnet = new NetworkGuard(['10.1.0.0/16']);
    expect(subnet.refusalReason('10.1.255.255')).toBeNull();
    expect(subnet.refusalReason('10.2.0.1')).toBe(refusal('10.2.0.1'));
  });
});

describe('NetworkGuard.guardedLookup', () => {
  const guard = new NetworkGuard();

  it.each([
    ['loopback.example', '127.0.0.1'],
    ['metadata.example', '169.254.169.254'],
    ['mapped.example', '::ffff:169.254.169.254'],
    ['mixed.example', '10.0.0.5'],
  ])('rejects %s', async (hostname, address) => {
    const { resolve } = stubResolver(ANSWERS);
    const lookup = guard.guardedLookup(resolve);
    for (const options of [{ all: true }, {}]) {
      const result = await callLookup(lookup, hostname, options);
      expect(result.error?.code).toBe('EADDRREFUSED');
      expect(result.error?.message).toBe(
        `refused to connect to ${hostname}: ${refusal(address)}`,
      );
      expect(result.address).toBeUndefined();
    }
  });

  it('returns every address with all', async () => {
    const { resolve } = stubResolver(ANSWERS);
    const result = await callLookup(guard.guardedLookup(resolve), 'public.example', {
      all: true,
    });
    expect(result.error).toBeNull();
    expect(result.address).toEqual(ANSWERS['public.example']);
  });

  it('returns the first address without all', async () => {
    const { resolve } = stubResolver(ANSWERS);
    const result = await callLookup(guard.guardedLookup(resolve), 'public.example', {});
    expect(result).toEqual({ error: null, address: '93.184.216.34', family: 4 });
  });

  it('accepts a callback without options', async () => {
    const { resolve } = stubResolver(ANSWERS);
    const result = await callLookup(guard.guardedLookup(resolve), 'public.example');
    expect(result).toEqual({ error: null, address: '93.184.216.34', family: 4 });
  });

  it('passes options to the resolver', async () => {
    const { resolve, calls } = stubResolver(ANSWERS);
    const lookup = guard.guardedLookup(resolve);
    await callLookup(lookup, 'public.example', { family: 6, hints: 32 });
    await callLookup(lookup, 'public.example', 4);
    expect(calls).toEqual([
      { hostname: 'public.example', options: { family: 6, hints: 32, all: true } },
      { hostname: 'public.example', options: { family: 4, all: true } },
    ]);
  });

  it('passes ENOTFOUND through', async () => {
    const { resolve } = stubResolver(ANSWERS);
    const lookup = guard.guardedLookup(resolve);
    for (const options of [{ all: true }, {}]) {
      const result = await callLookup(lookup, 'missing.example', options);
      expect(result.error?.code).toBe('ENOTFOUND');
      expect(result.error?.message).toBe('getaddrinfo ENOTFOUND missing.example');
    }
  });

  it('reports an empty answer', async () => {
    const { resolve } = stubResolver(ANSWERS);
    const lookup = guard.guardedLookup(resolve);
    const single = await callLookup(lookup, 'empty.example', {});
    expect(single.error?.code).toBe('ENOTFOUND');
    expect(single.error?.message).toBe('empty.example has no address');
    const all = await callLookup(lookup, 'empty.example', { all: true });
    expect(all).toEqual({ error: null, address: [], family: undefined });
  });

  it('passes loopback when allowed', async () => {
    const { resolve } = stubResolver(ANSWERS);
    const allowing = new NetworkGuard(['127.0.0.0/8']);
    const result = await callLookup(allowing.guardedLookup(resolve), 'loopback.example');
    expect(result).toEqual({ error: null, address: '127.0.0.1', family: 4 });
  });
});

describe('guardedLookup in net.connect', () => {
  let server: net.Server;
  let port: number;
  let accepted = 0;

  beforeAll(async () => {
    server = net.createServer((socket) => {
      accepted++;
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** Connects to `loopback.example`, which the stub resolves to this test's server. */
  function connect(guard: NetworkGuard): Promise<'connected' | NodeJS.ErrnoException> {
    const { resolve } = stubResolver(ANSWERS);
    return new Promise((settle) => {
      const socket = net.connect({
        host: 'loopback.example',
        port,
        lookup: guard.guardedLookup(resolve),
      });
      socket.once('connect', () => {
        socket.destroy();
        settle('connected');
      });
      socket.once('error', (error: NodeJS.ErrnoException) => settle(error));
    });
  }

  it('rejects before connecting', async () => {
    const before = accepted;
    const outcome = await connect(new NetworkGuard());
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as NodeJS.ErrnoException).code).toBe('EADDRREFUSED');
    expect(accepted).toBe(before);
  });

  it('connects when allowed', async () => {
    const outcome = await connect(new NetworkGuard(['127.0.0.0/8']));
    expect(outcome).toBe('connected');
  });
});
