import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { describe, expect, test } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import {
  verifyWebhook,
  WebhookVerificationError,
  type VerifyWebhookOptions,
  type WebhookHeaders,
  type WebhookVerificationErrorCode,
} from '../../shared/receiver/verify.js';
import { generateSecret, sign, signatureHeader } from '../../shared/signing.js';

const SECRET = generateSecret();
const OTHER_SECRET = generateSecret();
const NOW = new Date('2026-12-04T16:03:05.000Z');
const TIMESTAMP = Math.floor(NOW.getTime() / 1000);
const ID = '5f0c2c3e-8c1b-4a55-9d0e-2a1f3b4c5d6e';
const BODY =
  '{"event_class":"test.ping","event_id":"2b1e0000-0000-4000-8000-000000000000","delivery_id":"5f0c2c3e-8c1b-4a55-9d0e-2a1f3b4c5d6e","timestamp":"2026-12-04T16:03:05.857Z","data":{"a":"café ☕ 🚒 \u2028 line","path":"a/b"}}';

function signedHeaders(
  options: { secrets?: string[]; timestamp?: number; body?: string } = {},
): Record<string, string> {
  const timestamp = options.timestamp ?? TIMESTAMP;
  return {
    'webhook-id': ID,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signatureHeader(options.secrets ?? [SECRET], ID, timestamp, options.body ?? BODY),
  };
}

function verify(overrides: Partial<VerifyWebhookOptions> = {}) {
  return verifyWebhook({ headers: signedHeaders(), body: BODY, secret: SECRET, now: NOW, ...overrides });
}

/** Runs `run` and returns the WebhookVerificationError it throws, failing the test otherwise. */
function verificationError(run: () => unknown): WebhookVerificationError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(WebhookVerificationError);
  return caught as WebhookVerificationError;
}

function expectCode(run: () => unknown, code: WebhookVerificationErrorCode): WebhookVerificationError {
  const error = verificationError(run);
  expect(error.code, error.message).toBe(code);
  return error;
}

describe('verifyWebhook accepts', () => {
  test('signed string body', () => {
    const payload = verify();
    expect(payload.data).toEqual({ a: 'café ☕ 🚒 \u2028 line', path: 'a/b' });
    expect(payload.delivery_id).toBe(ID);
  });

  test('Buffer and Uint8Array bodies', () => {
    expect(verify({ body: Buffer.from(BODY, 'utf8') }).event_class).toBe('test.ping');
    const bytes = new TextEncoder().encode(BODY);
    expect(verify({ body: bytes }).event_class).toBe('test.ping');
    // A view into a larger buffer, as some frameworks hand out.
    const padded = new Uint8Array(bytes.length + 8);
    padded.set(bytes, 4);
    expect(verify({ body: padded.subarray(4, 4 + bytes.length) }).event_class).toBe('test.ping');
  });

  test('WHATWG Headers', () => {
    const headers = new Headers(signedHeaders());
    expect(verify({ headers }).event_class).toBe('test.ping');
  });

  test('Title-Case and upper-case names', () => {
    const signed = signedHeaders();
    const titleCase = {
      'Webhook-Id': signed['webhook-id'],
      'Webhook-Timestamp': signed['webhook-timestamp'],
      'Webhook-Signature': signed['webhook-signature'],
    };
    expect(verify({ headers: titleCase }).event_class).toBe('test.ping');
    const upper = Object.fromEntries(Object.entries(signed).map(([key, value]) => [key.toUpperCase(), value]));
    expect(verify({ headers: upper }).event_class).toBe('test.ping');
  });

  test('array values of Node headers', () => {
    const signed = signedHeaders();
    const incoming: IncomingHttpHeaders = {
      'webhook-id': signed['webhook-id'],
      'webhook-timestamp': signed['webhook-timestamp'],
      'webhook-signature': ['v1,' + 'A'.repeat(43) + '=', signed['webhook-signature']!],
    };
    expect(verify({ headers: incoming }).event_class).toBe('test.ping');
  });

  test('repeated signature header joined by comma', () => {
    const signed = signedHeaders();
    const headers = new Headers({ 'webhook-id': ID, 'webhook-timestamp': String(TIMESTAMP) });
    headers.append('webhook-signature', sign(OTHER_SECRET, ID, TIMESTAMP, BODY));
    headers.append('webhook-signature', signed['webhook-signature']!);
    expect(headers.get('webhook-signature')).toContain('=, v1,');
    expect(verify({ headers }).event_class).toBe('test.ping');
  });

  test('rotation: the second signature matches', () => {
    const headers = signedHeaders({ secrets: [OTHER_SECRET, SECRET] });
    expect(headers['webhook-signature']!.split(' ')).toHaveLength(2);
    expect(verify({ headers }).event_class).toBe('test.ping');
  });

  test('rotation: the second secret matches', () => {
    expect(verify({ secret: [OTHER_SECRET, SECRET] }).event_class).toBe('test.ping');
  });

  test('timestamps within the tolerance', () => {
    expect(verify({ headers: signedHeaders({ timestamp: TIMESTAMP - 300 }) }).event_class).toBe('test.ping');
    expect(verify({ headers: signedHeaders({ timestamp: TIMESTAMP + 300 }) }).event_class).toBe('test.ping');
    expect(
      verify({ headers: signedHeaders({ timestamp: TIMESTAMP - 3_000 }), toleranceSeconds: 3_600 }).event_class,
    ).toBe('test.ping');
  });

  test('signatures of the standardwebhooks package', () => {
    const headers = {
      'webhook-id': ID,
      'webhook-timestamp': String(TIMESTAMP),
      'webhook-signature': new Webhook(SECRET).sign(ID, NOW, BODY),
    };
    expect(verify({ headers }).event_class).toBe('test.ping');
    // And the other way: the package accepts what the workers sign.
    expect(new Webhook(SECRET).verify(BODY, signedHeaders({ timestamp: Math.floor(Date.now() / 1000) }))).toEqual(
      JSON.parse(BODY),
    );
  });
});

describe('verifyWebhook rejects', () => {
  test('missing header by name', () => {
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const headers: Record<string, string> = { ...signedHeaders() };
      delete headers[name];
      const error = expectCode(() => verify({ headers }), 'missing_header');
      expect(error.header).toBe(name);
      expect(error.message).toContain(name);
      const empty = expectCode(() => verify({ headers: { ...signedHeaders(), [name]: ' ' } }), 'missing_header');
      expect(empty.header).toBe(name);
    }
    expectCode(() => verify({ headers: new Headers() }), 'missing_header');
    expectCode(() => verify({ headers: {} }), 'missing_header');
  });

  test('timestamp 301 s old', () => {
    const error = expectCode(
      () => verify({ headers: signedHeaders({ timestamp: TIMESTAMP - 301 }) }),
      'timestamp_too_old',
    );
    expect(error.message).toContain('tolerance of 300 s');
    expect(error.message).toContain('301 s old');
  });

  test('timestamp 301 s ahead', () => {
    const error = expectCode(
      () => verify({ headers: signedHeaders({ timestamp: TIMESTAMP + 301 }) }),
      'timestamp_too_new',
    );
    expect(error.message).toContain('tolerance of 300 s');
  });

  test('timestamp not in integer seconds', () => {
    for (const value of ['abc', '1.5', '-5', '1796400185000000000', '2026-12-04T16:03:05Z']) {
      expectCode(() => verify({ headers: { ...signedHeaders(), 'webhook-timestamp': value } }), 'invalid_timestamp');
    }
  });

  test('only v1a signatures', () => {
    const headers = { ...signedHeaders(), 'webhook-signature': `v1a,${'A'.repeat(86)}==` };
    const error = expectCode(() => verify({ headers }), 'no_matching_signature');
    expect(error.message).toContain('no "v1," signature');
  });

  test('body with one byte changed', () => {
    const bytes = Buffer.from(BODY, 'utf8');
    bytes[10] = bytes[10]! ^ 0x01;
    expectCode(() => verify({ body: bytes }), 'no_matching_signature');
    expectCode(() => verify({ body: BODY.replace('a/b', 'a\\/b') }), 'no_matching_signature');
  });

  test('another secret, id or timestamp', () => {
    expectCode(() => verify({ secret: OTHER_SECRET }), 'no_matching_signature');
    expectCode(() => verify({ headers: { ...signedHeaders(), 'webhook-id': `${ID}x` } }), 'no_matching_signature');
    const signed = signedHeaders();
    const shifted = { ...signed, 'webhook-timestamp': String(TIMESTAMP + 1) };
    expectCode(() => verify({ headers: shifted }), 'no_matching_signature');
  });

  test('malformed signature entries', () => {
    const digest = signedHeaders()['webhook-signature']!.slice(3);
    for (const value of [digest, `v2,${digest}`, `v1,${digest.slice(0, -2)}`, `v1,${digest}!!`, 'v1,']) {
      expectCode(() => verify({ headers: { ...signedHeaders(), 'webhook-signature': value } }), 'no_matching_signature');
    }
  });

  test('parsed body', () => {
    const parsed = JSON.parse(BODY) as unknown;
    const error = expectCode(() => verify({ body: parsed as string }), 'raw_body_required');
    expect(error.message).toContain('string, Buffer or Uint8Array');
    expect(error.message).toContain('got an object');
    for (const body of [undefined, null, 42, [1]]) {
      expectCode(() => verify({ body: body as unknown as string }), 'raw_body_required');
    }
  });

  test('parsed body before missing headers', () => {
    expectCode(() => verify({ headers: {}, body: {} as unknown as string }), 'raw_body_required');
  });

  test('differing duplicate ids', () => {
    const headers = { ...signedHeaders(), 'Webhook-Id': 'another-id' };
    const error = expectCode(() => verify({ headers }), 'invalid_header');
    expect(error.header).toBe('webhook-id');
  });

  test('signed body that is no delivery', () => {
    const body = 'not json';
    const headers = signedHeaders({ body });
    expectCode(() => verify({ headers, body }), 'invalid_payload');
    const array = '[1,2]';
    expectCode(() => verify({ headers: signedHeaders({ body: array }), body: array }), 'invalid_payload');
  });

  test('malformed secrets as configuration errors', () => {
    for (const secret of ['not-a-secret', [], ['whsec_short']]) {
      expect(() => verify({ secret: secret as string })).toThrow(ValidationError);
    }
    expect(() => verify({ secret: [SECRET, 'bad'] })).toThrow('secret[1]: must be "whsec_"');
    expect(() => verify({ toleranceSeconds: -1 })).toThrow(ValidationError);
  });
});

describe('verifyWebhook types', () => {
  test('accepts every header type', () => {
    // Compile-time checks: `npx tsc -p .` fails when one of these is no
    // longer accepted, or when the last one is.
    const incoming: IncomingHttpHeaders = signedHeaders();
    const record: Record<string, string> = signedHeaders();
    const headers: Headers = new Headers(signedHeaders());
    const accepted: WebhookHeaders[] = [incoming, record, headers];
    // @ts-expect-error a number is not a header collection
    const rejected: WebhookHeaders = 42;
    expect(rejected).toBe(42);
    for (const item of accepted) {
      const payload = verifyWebhook<{ a: string }>({ headers: item, body: BODY, secret: SECRET, now: NOW });
      expect(payload.data.a).toBe('café ☕ 🚒 \u2028 line');
    }
  });
});

describe('receiver package entry', () => {
  test('is exported as webhook-deliverator/verify', async () => {
    const exported = await import('webhook-deliverator/verify');
    expect(exported.verifyWebhook).toBe(verifyWebhook);
    expect(exported.WebhookVerificationError).toBe(WebhookVerificationError);
  });

  test('imports no database or queue code', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = async (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = await readFile(file, 'utf8');
      for (const match of source.matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)) {
        const specifier = match[1]!;
        if (specifier.startsWith('.')) {
          await visit(path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.ts')));
        } else {
          packages.add(specifier);
        }
      }
    };
    await visit(path.join(root, 'shared/receiver/verify.ts'));
    expect([...seen].map((file) => path.relative(root, file)).sort()).toEqual([
      'shared/errors.ts',
      'shared/receiver/verify.ts',
      'shared/signing.ts',
    ]);
    expect([...packages].sort()).toEqual(['node:crypto', 'node:http']);
  });
});
