import { afterAll, beforeAll, expect } from 'vitest';
import { startSystem, type RunningSystem } from './system.js';
import { createTestEnv, type TestEnv } from './test-env.js';

/** The env and system of one describe block, filled in by its beforeAll hook. */
export interface SystemFixture {
  env: TestEnv;
  system: RunningSystem;
}

/**
 * Registers hooks that give the enclosing describe block its own database,
 * queue prefix and running system, so that blocks with different settings
 * never share jobs or rows.
 */
export function useSystem(options: Parameters<typeof startSystem>[1] = {}): SystemFixture {
  const fixture = {} as SystemFixture;
  beforeAll(async () => {
    fixture.env = await createTestEnv();
    fixture.system = await startSystem(fixture.env, options);
  });
  afterAll(async () => {
    await fixture.system?.stop();
    await fixture.env?.dispose();
  });
  return fixture;
}

/** A receiver as POST /v1/receivers returns it, with its secret. */
export interface CreatedReceiver {
  id: string;
  name: string;
  endpoint: string;
  secret: string;
}

/** Creates a receiver through the API and fails the test unless it returns 201. */
export async function createReceiver(
  system: RunningSystem,
  input: { name: string; endpoint: string; subscriptions: string[] },
): Promise<CreatedReceiver> {
  const response = await system.request('POST', '/v1/receivers', input);
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body as CreatedReceiver;
}

/** Publishes an event through the API and returns its id. */
export async function publishEvent(
  system: RunningSystem,
  eventClass: string,
  data: unknown = { n: 1 },
): Promise<string> {
  const response = await system.request('POST', '/v1/events', {
    event_class: eventClass,
    data,
  });
  expect(response.status, JSON.stringify(response.body)).toBe(202);
  return response.body.id as string;
}
