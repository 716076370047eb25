import { describe, expect, test } from 'vitest';
import { DeliveryStore } from '../../workers/delivery/delivery-store.js';
import { readDelivery } from '../helpers/delivery-assertions.js';
import { ReceiverHarness } from '../helpers/receiver-harness.js';
import { createReceiver, publishEvent, useSystem } from '../helpers/system-fixture.js';
import { waitFor } from '../helpers/test-env.js';

describe('delivery claim', () => {
  const fixture = useSystem({ delivery: false });

  test('row locked by a write', async () => {
    const { env, system } = fixture;
    const harness = await new ReceiverHarness().start();
    try {
      const rx = await createReceiver(system, {
        name: 'locked-row',
        endpoint: harness.url(),
        subscriptions: ['claim.locked'],
      });
      const eventId = await publishEvent(system, 'claim.locked');
      const pending = await waitFor(() => readDelivery(env.pool, eventId, rx.id));
      const store = new DeliveryStore(env.pool, 'worker-claim', 60_000);

      // Another transaction writes the row, as a worker recording an
      // attempt does. SKIP LOCKED passes the row over, but nothing leases it.
      const writer = await env.pool.connect();
      try {
        await writer.query('BEGIN');
        await writer.query('SELECT id FROM webhook_delivery WHERE id = $1 FOR UPDATE', [
          pending.id,
        ]);
        const claim = await store.claim(pending.id);
        expect(claim).toEqual({ kind: 'leased', leaseExpiresInMs: 0 });
      } finally {
        await writer.query('ROLLBACK');
        writer.release();
      }

      const retried = await store.claim(pending.id);
      expect(retried.kind).toBe('claimed');
      // A claim that another worker's fresh lease blocks still waits for it.
      const other = new DeliveryStore(env.pool, 'worker-other', 60_000);
      const blocked = await other.claim(pending.id);
      expect(blocked.kind).toBe('leased');
      if (blocked.kind === 'leased') {
        expect(blocked.leaseExpiresInMs).toBeGreaterThan(50_000);
      }
    } finally {
      await harness.stop();
    }
  });
});
