import { describe, expect, test } from 'vitest';
import { parseRoles, RoleError } from '../../scripts/roles.js';

describe('parseRoles', () => {
  test.each([
    [['api'], ['api']],
    [['delivery', 'dispatch'], ['dispatch', 'delivery']],
    [['all'], ['api', 'dispatch', 'delivery', 'dashboard']],
    [['api', 'all', 'api'], ['api', 'dispatch', 'delivery', 'dashboard']],
    [['dashboard'], ['dashboard']],
  ])('%j gives %j', (words, roles) => {
    expect(parseRoles(words)).toEqual(roles);
  });

  test('rejects unknown role', () => {
    expect(() => parseRoles(['api', 'worker'])).toThrow(RoleError);
    expect(() => parseRoles(['worker'])).toThrow('unknown role "worker"; use api, dispatch, delivery, dashboard or all');
  });

  test('rejects empty list', () => {
    expect(() => parseRoles([])).toThrow('no role given; name one or more of api, dispatch, delivery, dashboard, or all');
  });
});
