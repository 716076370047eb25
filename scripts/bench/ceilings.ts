import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { PrismaClient } from '../../shared/db/client.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import { HttpSender } from '../../workers/delivery/send-request.js';

/** Sends `count` POSTs of one body with our got settings, `concurrency` at a time; returns requests per second. */
export async function measureGotCeiling(options: {
  url: string;
  body: string;
  count: number;
  concurrency: number;
}): Promise<number> {
  const sender = new HttpSender({
    connectTimeoutMs: 10_000,
    attemptTimeoutMs: 30_000,
    responseBodyLimitBytes: 65_536,
    guard: new NetworkGuard(['127.0.0.0/8']),
    maxSockets: options.concurrency * 2,
  });
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < options.count) {
      next++;
      const outcome = await sender.send(options.url, { 'webhook-id': 'bench' }, options.body);
      if (outcome.result !== 'succeeded') throw new Error(`got ceiling: ${outcome.result}`);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, lane));
  const seconds = (performance.now() - started) / 1000;
  sender.close();
  return options.count / seconds;
}

/** Runs `count` no-op jobs through one BullMQ worker; returns jobs per second. */
export async function measureBullmqCeiling(options: {
  redisUrl: string;
  count: number;
  concurrency: number;
}): Promise<number> {
  const prefix = `whk-bench-noop-${randomUUID().slice(0, 8)}`;
  const connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('noop', { connection, prefix });
  for (let start = 0; start < options.count; start += 1000) {
    const size = Math.min(1000, options.count - start);
    await queue.addBulk(
      Array.from({ length: size }, (_, index) => ({
        name: 'noop',
        data: { deliveryId: randomUUID(), index: start + index },
        opts: { removeOnComplete: true },
      })),
    );
  }
  let done = 0;
  const started = performance.now();
  const finished = new Promise<void>((resolve) => {
    const worker = new Worker('noop', async () => undefined, {
      connection: new Redis(options.redisUrl, { maxRetriesPerRequest: null }),
      prefix,
      concurrency: options.concurrency,
    });
    worker.on('completed', () => {
      done++;
      if (done === options.count) {
        void worker.close().then(() => resolve());
      }
    });
  });
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  return options.count / seconds;
}

/**
 * Inserts `count` delivery rows and as many attempt rows with createMany in
 * batches of 1000; returns rows per second (both tables together).
 */
export async function measurePrismaBulkCeiling(
  prisma: PrismaClient,
  count: number,
): Promise<number> {
  const now = new Date();
  const rxId = randomUUID();
  const eventIds = Array.from({ length: Math.ceil(count / 1000) }, () => randomUUID());
  await prisma.webhookRx.create({
    data: { id: rxId, name: `bench-ceiling-${rxId.slice(0, 8)}`, endpoint: 'http://127.0.0.1/', timeCreated: now, timeModified: now },
  });
  await prisma.webhookEvent.createMany({
    data: eventIds.map((id) => ({ id, eventClass: 'bench.ceiling', event: '{}', timeCreated: now, timeModified: now })),
  });
  const started = performance.now();
  for (let start = 0, batch = 0; start < count; start += 1000, batch++) {
    const size = Math.min(1000, count - start);
    const deliveries = Array.from({ length: size }, () => ({
      id: randomUUID(),
      eventId: eventIds[batch]!,
      rxId,
      triggeredBy: 'resend' as const,
      state: 'delivered' as const,
      attempts: 1,
      timeCreated: now,
      timeCompleted: now,
    }));
    await prisma.webhookDelivery.createMany({ data: deliveries });
    await prisma.webhookDeliveryAttempt.createMany({
      data: deliveries.map((delivery) => ({
        id: randomUUID(),
        deliveryId: delivery.id,
        attempt: 1,
        rxId,
        result: 'succeeded' as const,
        responseStatus: 200,
        responseDuration: 1,
        timeCreated: now,
        deliveratorId: 'bench',
      })),
    });
  }
  const seconds = (performance.now() - started) / 1000;
  await prisma.webhookRx.delete({ where: { id: rxId } });
  await prisma.webhookEvent.deleteMany({ where: { id: { in: eventIds } } });
  return (2 * count) / seconds;
}
