-- Idempotency-Key of POST /v1/events: one row per key, holding the hash of
-- the first request and, once it succeeded, its response. The primary key
-- makes INSERT ... ON CONFLICT the lock between concurrent requests with one
-- key. `event_id` is chosen when the key is claimed, so that a request that
-- takes over the claim of a crashed one publishes the same event.
CREATE TABLE "webhook_idempotency_key" (
    "key" TEXT NOT NULL,
    "request_hash" TEXT NOT NULL,
    "event_id" UUID NOT NULL,
    "response_status" INTEGER,
    "response_body" TEXT,
    "time_created" TIMESTAMPTZ(6) NOT NULL,
    "time_expires" TIMESTAMPTZ(6) NOT NULL,

    CONSTRAINT "webhook_idempotency_key_pkey" PRIMARY KEY ("key")
);

-- The periodic cleanup deletes by expiry.
CREATE INDEX "lookup_webhook_idempotency_keys_by_expiry" ON "webhook_idempotency_key"("time_expires");

ALTER TABLE "webhook_idempotency_key" ADD CONSTRAINT "webhook_idempotency_key_length"
    CHECK (length("key") BETWEEN 1 AND 255);
-- A response is stored whole or not at all.
ALTER TABLE "webhook_idempotency_key" ADD CONSTRAINT "webhook_idempotency_key_response"
    CHECK (("response_status" IS NULL) = ("response_body" IS NULL));
