import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Address ranges that a delivery must not reach unless an operator allows
 * them: loopback, private, link-local (cloud metadata lives there), CGNAT,
 * multicast, reserved and the IPv6 forms of all of these.
 */
const FORBIDDEN_RANGES: ReadonlyArray<[string, number, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'],
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['192.0.2.0', 24, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['198.51.100.0', 24, 'ipv4'],
  ['203.0.113.0', 24, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['64:ff9b::', 96, 'ipv6'],
  ['100::', 64, 'ipv6'],
  ['2001:db8::', 32, 'ipv6'],
  ['fc00::', 7, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
  ['fec0::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
];

/** Decides which addresses deliveries may connect to. */
export class NetworkGuard {
  private readonly forbidden = new BlockList();
  private readonly allowed = new BlockList();

  constructor(allowedNetworks: readonly string[] = []) {
    for (const [address, prefix, family] of FORBIDDEN_RANGES) {
      this.forbidden.addSubnet(address, prefix, family);
    }
    for (const network of allowedNetworks) {
      const [address, prefix] = network.split('/');
      const family = isIP(address!) === 6 ? 'ipv6' : 'ipv4';
      this.allowed.addSubnet(address!, Number(prefix), family);
    }
  }

  /** Returns why `address` is refused, or null when it may be reached. */
  refusalReason(address: string): string | null {
    const family = isIP(address);
    if (family === 0) return `"${address}" is not an IP address`;
    // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) reaches the IPv4 host.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    const target = mapped ? mapped[1]! : address;
    const type = isIP(target) === 6 ? 'ipv6' : 'ipv4';
    if (this.allowed.check(target, type)) return null;
    if (this.forbidden.check(target, type)) {
      return `address ${address} is loopback, private, link-local or reserved; add its network to ALLOWED_PRIVATE_NETWORKS to allow it`;
    }
    return null;
  }

  /**
   * Wraps a DNS lookup so that every address it returns is checked. The
   * socket connects to the checked address, so a name that resolves to a
   * public address at save time and a private one later (DNS rebinding)
   * is still refused.
   */
  guardedLookup(resolve: typeof dnsLookup = dnsLookup): typeof dnsLookup {
    const guard = this;
    function lookup(hostname: string, options: unknown, callback: unknown) {
      const done = (typeof options === 'function' ? options : callback) as (
        error: NodeJS.ErrnoException | null,
        address?: string | LookupAddress[],
        family?: number,
      ) => void;
      // dns.lookup also takes a bare family number (4 or 6) as its options.
      const lookupOptions = (
        typeof options === 'number'
          ? { family: options }
          : typeof options === 'object' && options !== null
            ? options
            : {}
      ) as { all?: boolean; family?: number };
      resolve(hostname, { ...lookupOptions, all: true }, (error, addresses) => {
        if (error) return done(error);
        const list = addresses as LookupAddress[];
        for (const entry of list) {
          const reason = guard.refusalReason(entry.address);
          if (reason !== null) {
            const refused: NodeJS.ErrnoException = new Error(
              `refused to connect to ${hostname}: ${reason}`,
            );
            refused.code = 'EADDRREFUSED';
            return done(refused);
          }
        }
        if (lookupOptions.all) return done(null, list);
        const first = list[0];
        if (!first) {
          const missing: NodeJS.ErrnoException = new Error(
            `${hostname} has no address`,
          );
          missing.code = 'ENOTFOUND';
          return done(missing);
        }
        done(null, first.address, first.family);
      });
    }
    return lookup as unknown as typeof dnsLookup;
  }
}
