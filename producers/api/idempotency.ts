import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PrismaClient } from '../../shared/db/client.js';
import { WebhookError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

/** How long a repeat waits for the first request with its key to finish. */
export const IN_PROGRESS_WAIT_MS = 5_000;
const POLL_INTERVAL_MS = 25;

/**
 * Age after which a claim without a response counts as abandoned, by a
 * process that crashed or lost PostgreSQL, and a repeat with the same body
 * takes it over. Publishing takes milliseconds, plus at most the 2 s that
 * the publisher waits for Redis.
 */
export const ABANDONED_CLAIM_MS = 60_000;

/** How often each API process deletes expired keys. */
export const CLEANUP_INTERVAL_MS = 10 * 60_000;

export class IdempotencyKeyReusedError extends WebhookError {
  constructor(key: string) {
    super(
      'idempotency_key_reused',
      `Idempotency-Key: "${key}" was already used with a different request body; use a new key for a new request`,
      422,
    );
  }
}

export class IdempotencyKeyInProgressError extends WebhookError {
  constructor(key: string) {
    super(
      'idempotency_key_in_progress',
      `Idempotency-Key: a request with "${key}" is still running; retry after it has finished`,
      409,
    );
  }
}

/** A stored success response. */
export interface StoredResponse {
  status: number;
  body: unknown;
}

interface ClaimRow {
  event_id: string;
}

/** JSON text with object keys sorted, so that key order does not change the hash. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => compareCodeUnits(a, b));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Orders strings by UTF-16 code units, independent of the locale. */
function compareCodeUnits(a: string, b: string): number {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}

/** Hashes the operation and its validated body with SHA-256, in hex. */
export function requestHash(operationId: string, body: unknown): string {
  return createHash('sha256').update(operationId).update('\n').update(canonicalJson(body)).digest('hex');
}

/**
 * Stores Idempotency-Keys in `webhook_idempotency_key`, whose primary key
 * makes one request the owner of a key. The owner runs the operation and
 * stores its response; a repeat with the same body replays it.
 */
export class IdempotencyKeys {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly ttlMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Runs `execute` once per key. Resolves to its response, or to the stored
   * one with `replayed` set when an earlier request with the key and the same
   * body succeeded. `execute` gets the event id chosen at the first claim.
   * An error of `execute` releases the key, so that a repeat runs again.
   */
  async run(
    key: string,
    hash: string,
    proposedEventId: string,
    execute: (eventId: string) => Promise<StoredResponse>,
  ): Promise<StoredResponse & { replayed: boolean }> {
    const deadline = Date.now() + IN_PROGRESS_WAIT_MS;
    for (;;) {
      const claimed = await this.claim(key, hash, proposedEventId);
      if (claimed !== null) {
        return { ...(await this.executeClaimed(key, hash, claimed, execute)), replayed: false };
      }
      const row = await this.prisma.webhookIdempotencyKey.findUnique({ where: { key } });
      if (row !== null) {
        if (row.requestHash !== hash) throw new IdempotencyKeyReusedError(key);
        if (row.responseStatus !== null && row.responseBody !== null) {
          return { status: row.responseStatus, body: JSON.parse(row.responseBody), replayed: true };
        }
      }
      // The key is held by a running request, or its holder failed and
      // deleted it after the claim above; the next claim may take it.
      if (Date.now() >= deadline) throw new IdempotencyKeyInProgressError(key);
      await sleep(POLL_INTERVAL_MS);
    }
  }

  /**
   * Inserts the key, or takes over a row that has expired or whose claim
   * was abandoned with the same body. Returns the event id to publish, or
   * null when another request has claimed the key.
   */
  private async claim(key: string, hash: string, proposedEventId: string): Promise<string | null> {
    const rows = await this.prisma.$queryRaw<ClaimRow[]>`
      INSERT INTO webhook_idempotency_key AS stored
        (key, request_hash, event_id, time_created, time_expires)
      VALUES (${key}, ${hash}, ${proposedEventId}::uuid, now(),
              now() + make_interval(secs => ${this.ttlMs / 1000}))
      ON CONFLICT (key) DO UPDATE SET
        request_hash = EXCLUDED.request_hash,
        event_id = CASE WHEN stored.time_expires <= now() THEN EXCLUDED.event_id ELSE stored.event_id END,
        response_status = NULL,
        response_body = NULL,
        time_created = EXCLUDED.time_created,
        time_expires = EXCLUDED.time_expires
      WHERE stored.time_expires <= now()
         OR (stored.response_status IS NULL
             AND stored.request_hash = EXCLUDED.request_hash
             AND stored.time_created < now() - make_interval(secs => ${ABANDONED_CLAIM_MS / 1000}))
      RETURNING event_id::text`;
    return rows[0]?.event_id ?? null;
  }

  private async executeClaimed(
    key: string,
    hash: string,
    eventId: string,
    execute: (eventId: string) => Promise<StoredResponse>,
  ): Promise<StoredResponse> {
    let response: StoredResponse;
    try {
      response = await execute(eventId);
    } catch (error) {
      await this.prisma.webhookIdempotencyKey
        .deleteMany({ where: { key, requestHash: hash, responseStatus: null } })
        .catch((releaseError: unknown) => {
          // The claim stays until ABANDONED_CLAIM_MS, then a repeat takes it over.
          this.logger.warn({ err: releaseError, eventId }, 'could not release an Idempotency-Key after a failed request');
        });
      throw error;
    }
    try {
      await this.prisma.webhookIdempotencyKey.updateMany({
        where: { key, requestHash: hash, responseStatus: null },
        data: { responseStatus: response.status, responseBody: JSON.stringify(response.body) },
      });
    } catch (error) {
      // The event is stored; a repeat after ABANDONED_CLAIM_MS takes the
      // claim over and publishes the same event id again, which stores nothing new.
      this.logger.warn({ err: error, eventId }, 'could not store the response of an Idempotency-Key');
    }
    return response;
  }

  /** Deletes keys that expired; returns how many. */
  async deleteExpired(): Promise<number> {
    const deleted = await this.prisma.webhookIdempotencyKey.deleteMany({
      where: { timeExpires: { lte: new Date() } },
    });
    return deleted.count;
  }

  /**
   * Runs `deleteExpired` every CLEANUP_INTERVAL_MS until the returned
   * function is called. Expired keys are ignored before they are deleted,
   * so the cleanup only bounds the table's size.
   */
  startCleanup(): () => void {
    const runOnce = () => {
      this.deleteExpired()
        .then((count) => {
          if (count > 0) this.logger.info({ count }, 'deleted expired Idempotency-Keys');
        })
        .catch((error: unknown) => {
          this.logger.warn({ err: error }, 'could not delete expired Idempotency-Keys; retrying at the next interval');
        });
    };
    const timer = setInterval(runOnce, CLEANUP_INTERVAL_MS);
    timer.unref();
    return () => clearInterval(timer);
  }
}
