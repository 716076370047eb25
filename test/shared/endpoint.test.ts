import { describe, expect, it } from 'vitest';
import { assertEndpoint, MAX_ENDPOINT_LENGTH } from '../../shared/endpoint.js';
import { ValidationError } from '../../shared/errors.js';
import { NetworkGuard } from '../../shared/network-guard.js';

const guard = new NetworkGuard();
const loopbackAllowed = new NetworkGuard(['127.0.0.0/8']);

function refusal(address: string): string {
  return `endpoint: address ${address} is loopback, private, link-local or reserved; add its network to ALLOWED_PRIVATE_NETWORKS to allow it`;
}

function rejection(value: unknown, withGuard = guard, field?: string): ValidationError {
  let caught: unknown;
  try {
    assertEndpoint(value, withGuard, field);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ValidationError);
  return caught as ValidationError;
}

describe('assertEndpoint', () => {
  it.each([
    ['https://example.com/hook', 'https://example.com/hook'],
    ['https://hooks.example.com:8443/a/b?x=1&y=2', 'https://hooks.example.com:8443/a/b?x=1&y=2'],
    ['http://example.com', 'http://example.com/'],
    ['https://EXAMPLE.com/Hook', 'https://example.com/Hook'],
    ['https://example.com:443/hook', 'https://example.com/hook'],
    ['https://93.184.216.34/hook', 'https://93.184.216.34/hook'],
    ['https://[2606:4700:4700::1111]/hook', 'https://[2606:4700:4700::1111]/hook'],
  ])('accepts %s', (value, expected) => {
    expect(assertEndpoint(value, guard)).toBe(expected);
  });

  it('accepts the maximum length', () => {
    const prefix = 'https://example.com/';
    const value = prefix + 'a'.repeat(MAX_ENDPOINT_LENGTH - prefix.length);
    expect(assertEndpoint(value, guard)).toBe(value);
  });

  it.each([
    ['ftp://example.com/hook', 'ftp'],
    ['javascript:alert(1)', 'javascript'],
    ['file:///etc/passwd', 'file'],
    ['ws://example.com/hook', 'ws'],
    ['data:text/plain,hello', 'data'],
  ])('rejects the scheme of %s', (value, scheme) => {
    expect(rejection(value).message).toBe(
      `endpoint: must use http or https, got "${scheme}"`,
    );
  });

  it.each([
    'https://user:pass@example.com/hook',
    'https://user@example.com/hook',
    'https://:pass@example.com/hook',
  ])('rejects credentials in %s', (value) => {
    expect(rejection(value).message).toBe(
      'endpoint: must not contain credentials; receivers authenticate requests by their signature',
    );
  });

  it.each(['https://example.com/hook#section', 'https://example.com/hook#'])(
    'rejects the fragment of %s',
    (value) => {
      expect(rejection(value).message).toBe(
        'endpoint: must not contain a fragment ("#...")',
      );
    },
  );

  it.each([
    ['http://127.0.0.1:8080/hook', '127.0.0.1'],
    ['http://127.1/hook', '127.0.0.1'],
    ['http://2130706433/hook', '127.0.0.1'],
    ['http://0x7f.1/hook', '127.0.0.1'],
    ['http://0/hook', '0.0.0.0'],
    ['http://10.0.0.1/hook', '10.0.0.1'],
    ['http://172.16.5.4/hook', '172.16.5.4'],
    ['http://192.168.1.1/hook', '192.168.1.1'],
    ['http://100.64.0.1/hook', '100.64.0.1'],
    ['http://169.254.169.254/latest/meta-data/', '169.254.169.254'],
    ['http://[::1]/hook', '::1'],
    ['http://[fd00::1]/hook', 'fd00::1'],
    ['http://[fe80::1]/hook', 'fe80::1'],
    ['http://[::ffff:127.0.0.1]/hook', '::ffff:7f00:1'],
    ['http://[::ffff:169.254.169.254]/hook', '::ffff:a9fe:a9fe'],
  ])('rejects the address of %s', (value, address) => {
    expect(rejection(value).message).toBe(refusal(address));
  });

  it.each([
    'http://localhost:3000/hook',
    'http://LOCALHOST/hook',
    'http://localhost./hook',
    'http://app.localhost/hook',
    'http://app.localhost./hook',
  ])('rejects the loopback name %s', (value) => {
    expect(rejection(value).message).toBe(refusal('127.0.0.1'));
  });

  it('accepts a name ending in localhost', () => {
    expect(assertEndpoint('https://notlocalhost.example/hook', guard)).toBe(
      'https://notlocalhost.example/hook',
    );
  });

  it.each([
    ['http://127.0.0.1:8080/hook', 'http://127.0.0.1:8080/hook'],
    ['http://localhost:3000/hook', 'http://localhost:3000/hook'],
    ['http://app.localhost/hook', 'http://app.localhost/hook'],
  ])('accepts allowed %s', (value, expected) => {
    expect(assertEndpoint(value, loopbackAllowed)).toBe(expected);
  });

  it.each([
    ['http://[::1]/hook', '::1'],
    ['http://10.0.0.1/hook', '10.0.0.1'],
    ['http://169.254.169.254/', '169.254.169.254'],
  ])('still rejects %s when loopback is allowed', (value, address) => {
    expect(rejection(value, loopbackAllowed).message).toBe(refusal(address));
  });

  it('rejects an over-long URL', () => {
    const prefix = 'https://example.com/';
    const value = prefix + 'a'.repeat(MAX_ENDPOINT_LENGTH - prefix.length + 1);
    expect(rejection(value).message).toBe(
      `endpoint: must be at most ${MAX_ENDPOINT_LENGTH} characters, got ${MAX_ENDPOINT_LENGTH + 1}`,
    );
  });

  it.each(['example.com/hook', '/hook', 'https://', 'http://exa mple.com/'])(
    'rejects the relative or invalid %j',
    (value) => {
      expect(rejection(value).message).toBe(
        `endpoint: must be an absolute http or https URL, got "${value}"`,
      );
    },
  );

  it.each([['', ''], ['a number', 42], ['null', null], ['undefined', undefined]])(
    'rejects %s',
    (_label, value) => {
      expect(rejection(value).message).toBe('endpoint: must be an http or https URL');
    },
  );

  it('uses the given field name', () => {
    const error = rejection('ftp://example.com/', guard, 'receiver.endpoint');
    expect(error.field).toBe('receiver.endpoint');
    expect(error.message.startsWith('receiver.endpoint: ')).toBe(true);
  });
});
