import type { Queue } from 'bullmq';
import { pino } from 'pino';
import type { Config } from '../../shared/config.js';
import { createPrismaClient, type PrismaClient } from '../../shared/db/client.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { NetworkGuard } from '../../shared/network-guard.js';
import {
  openDispatchQueue,
  producerConnection,
  withTimeout,
  type DispatchJobData,
  type RedisClient,
} from '../../shared/queues.js';
import { Publisher } from '../publish.js';
import { ReceiverService } from '../receivers.js';

/** Maximum time that closing the dispatch queue may take when Redis is down. */
const QUEUE_CLOSE_TIMEOUT_MS = 1_000;

/**
 * Creates the CLI's logger. It writes JSON lines to stderr, synchronously so
 * that nothing is lost when the process exits, because stdout carries the
 * command's JSON output.
 */
export function createCliLogger(level: string): Logger {
  return createLogger('cli', level, pino.destination({ dest: 2, sync: true }));
}

/**
 * Opens the connections that a command needs on first use, so that
 * `receivers` and `events` commands never connect to Redis, and closes them
 * all so that the process can exit by itself.
 */
export class CliResources {
  private prismaClient: PrismaClient | undefined;
  private redis: RedisClient | undefined;
  private dispatchQueue: Queue<DispatchJobData> | undefined;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  get prisma(): PrismaClient {
    this.prismaClient ??= createPrismaClient({
      databaseUrl: this.config.databaseUrl,
      poolMax: this.config.databasePoolMax,
      applicationName: 'webhook-cli',
    });
    return this.prismaClient;
  }

  receivers(): ReceiverService {
    return new ReceiverService(
      this.prisma,
      new NetworkGuard(this.config.allowedPrivateNetworks),
    );
  }

  publisher(): Publisher {
    if (this.dispatchQueue === undefined) {
      const redis = producerConnection(this.config);
      // ioredis emits connection failures as events, and an event without a
      // listener would crash the process. The Publisher logs the failed
      // enqueue itself, and the event row is already stored by then.
      redis.on('error', () => {});
      const dispatchQueue = openDispatchQueue(redis, this.config);
      dispatchQueue.on('error', () => {});
      this.redis = redis;
      this.dispatchQueue = dispatchQueue;
    }
    return new Publisher({
      prisma: this.prisma,
      dispatchQueue: this.dispatchQueue,
      logger: this.logger,
      maxPayloadBytes: this.config.maxPayloadBytes,
    });
  }

  /** Closes every connection that was opened, logging errors at debug level instead of throwing. */
  async close(): Promise<void> {
    if (this.dispatchQueue !== undefined) {
      await withTimeout(
        this.dispatchQueue.close(),
        QUEUE_CLOSE_TIMEOUT_MS,
        'closing the dispatch queue',
      ).catch((error: unknown) => {
        this.logger.debug({ err: error }, 'dispatch queue did not close cleanly');
      });
    }
    this.redis?.disconnect();
    if (this.prismaClient !== undefined) {
      await this.prismaClient.$disconnect().catch((error: unknown) => {
        this.logger.debug({ err: error }, 'database connections did not close cleanly');
      });
    }
  }
}
