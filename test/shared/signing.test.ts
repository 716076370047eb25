import { randomBytes } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import {
  decodeSecret,
  generateSecret,
  sign,
  signatureHeader,
} from '../../shared/signing.js';

/** Published test vectors of the Standard Webhooks signature scheme. */
const VECTORS = [
  {
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    timestamp: 1614265330,
    body: '{"test": 2432232314}',
    signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  },
  {
    secret: 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD',
    id: 'msg_27UH4WbU6Z5A5EzD8u03UvzRbpk',
    timestamp: 1649367553,
    body: '{"email":"test@example.com","username":"test_user"}',
    signature: 'v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=',
  },
];

const SECRET_RULE =
  'must be "whsec_" followed by base64 of 24 to 64 bytes, without a "v1," prefix';

function secretOfBytes(length: number): string {
  return `whsec_${randomBytes(length).toString('base64')}`;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Verifies with the standardwebhooks package, an implementation independent of ours. */
function verifyWithLibrary(
  secret: string,
  id: string,
  timestamp: number,
  body: string,
  signature: string,
): unknown {
  return new Webhook(secret).verify(body, {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signature,
  });
}

function catchError(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('sign', () => {
  it.each(VECTORS)('matches the vector for $id', (vector) => {
    expect(sign(vector.secret, vector.id, vector.timestamp, vector.body)).toBe(
      vector.signature,
    );
  });

  it('accepts a decoded key', () => {
    const [vector] = VECTORS;
    const key = decodeSecret(vector!.secret);
    expect(sign(key, vector!.id, vector!.timestamp, vector!.body)).toBe(
      vector!.signature,
    );
  });

  it('signs escaped slashes as sent', () => {
    const escaped = sign(VECTORS[0]!.secret, 'msg_1', 1700000000, '{"url":"a\\/b"}');
    const plain = sign(VECTORS[0]!.secret, 'msg_1', 1700000000, '{"url":"a/b"}');
    expect(escaped).not.toBe(plain);
  });

  it('rejects a malformed secret', () => {
    const error = catchError(() =>
      sign('v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_1', 1700000000, '{}'),
    );
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toBe(`secret: ${SECRET_RULE}`);
  });
});

describe('signatureHeader', () => {
  it('joins one signature per secret', () => {
    const [first, second] = VECTORS;
    const header = signatureHeader(
      [first!.secret, second!.secret],
      first!.id,
      first!.timestamp,
      first!.body,
    );
    expect(header).toBe(
      `${first!.signature} ${sign(second!.secret, first!.id, first!.timestamp, first!.body)}`,
    );
  });

  it('verifies with standardwebhooks for each secret', () => {
    const secrets = [generateSecret(), generateSecret()];
    const id = 'msg_rotation';
    const timestamp = nowSeconds();
    const body = '{"event_class":"github.push","data":{"n":1}}';
    const header = signatureHeader(secrets, id, timestamp, body);
    expect(header.split(' ')).toHaveLength(2);
    for (const secret of secrets) {
      expect(verifyWithLibrary(secret, id, timestamp, body, header)).toEqual({
        event_class: 'github.push',
        data: { n: 1 },
      });
    }
  });

  it('fails verification with another secret', () => {
    const id = 'msg_other';
    const timestamp = nowSeconds();
    const header = signatureHeader([generateSecret()], id, timestamp, '{}');
    const error = catchError(() =>
      verifyWithLibrary(generateSecret(), id, timestamp, '{}', header),
    );
    expect(error).toBeInstanceOf(WebhookVerificationError);
  });

  it.each([
    ['non-ASCII text', '{"text":"Grüße, Łódź, 東京, Ελληνικά"}'],
    ['emoji', '{"text":"ship it 🚀👩🏽‍💻"}'],
    ['U+2028 and U+2029', '{"text":"line\u2028separator\u2029paragraph"}'],
    ['escaped slashes', '{"url":"https:\\/\\/example.com\\/hook"}'],
    ['escaped unicode', '{"text":"\\u00e9\\ud83d\\ude80"}'],
  ])('verifies a body with %s', (_label, body) => {
    const secret = generateSecret();
    const id = 'msg_unicode';
    const timestamp = nowSeconds();
    const header = signatureHeader([secret], id, timestamp, body);
    expect(verifyWithLibrary(secret, id, timestamp, body, header)).toEqual(
      JSON.parse(body),
    );
  });
});

describe('generateSecret', () => {
  it('has the whsec_ form', () => {
    expect(generateSecret()).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
  });

  it('decodes to 32 bytes', () => {
    expect(decodeSecret(generateSecret())).toHaveLength(32);
  });

  it('differs on every call', () => {
    const secrets = new Set(Array.from({ length: 100 }, generateSecret));
    expect(secrets.size).toBe(100);
  });
});

describe('decodeSecret', () => {
  it('decodes the base64 key', () => {
    const key = randomBytes(40);
    expect(decodeSecret(`whsec_${key.toString('base64')}`).equals(key)).toBe(true);
  });

  it.each(VECTORS)('accepts the vector secret for $id', (vector) => {
    expect(decodeSecret(vector.secret)).toHaveLength(24);
  });

  it.each([24, 64])('accepts %i bytes', (length) => {
    expect(decodeSecret(secretOfBytes(length))).toHaveLength(length);
  });

  it.each([
    ['a "v1," prefix', 'v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
    ['a missing prefix', 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
    ['an upper-case prefix', 'WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
    ['no key', 'whsec_'],
    ['invalid base64 characters', 'whsec_MfKQ9r8GKYqrTwjU!D8ILPZIo2LaLaSw'],
    ['base64url characters', 'whsec_MfKQ9r8GKYqrTwjU-D8ILPZIo2LaLa_w'],
    ['missing padding', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS'],
    ['padding in the middle', 'whsec_MfKQ9r8G=YqrTwjUPD8ILPZIo2LaLaSw'],
    ['inner whitespace', 'whsec_MfKQ9r8GKYqrTwjU PD8ILPZIo2LaLaSw'],
    ['a trailing newline', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n'],
  ])('rejects %s', (_label, secret) => {
    const error = catchError(() => decodeSecret(secret, 'secrets[0]'));
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe('secrets[0]');
    expect((error as Error).message).toBe(`secrets[0]: ${SECRET_RULE}`);
  });

  it.each([16, 23, 65])('rejects %i bytes', (length) => {
    const secret = secretOfBytes(length);
    const error = catchError(() => decodeSecret(secret));
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toBe(
      `secret: ${SECRET_RULE}, got ${length} bytes`,
    );
  });

  it('rejects a non-string', () => {
    expect(() => decodeSecret(42)).toThrow(`secret: ${SECRET_RULE}, got number`);
  });

  it('keeps the secret out of messages', () => {
    const key = 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const short = randomBytes(16).toString('base64');
    const candidates = [
      `v1,whsec_${key}`,
      key,
      `whsec_${key.slice(1)}`,
      `whsec_${short}`,
    ];
    for (const secret of candidates) {
      const error = catchError(() => decodeSecret(secret));
      expect(error).toBeInstanceOf(ValidationError);
      const message = (error as Error).message;
      expect(message).not.toContain(key.slice(4, 20));
      expect(message).not.toContain(short.slice(0, 16));
    }
  });
});
