-- Bulk resends of failed deliveries, and an index that lists deliveries by
-- time alone. Written by hand, like the end of the first migration; keep
-- schema.prisma in step.

CREATE TYPE "webhook_resend_batch_state" AS ENUM ('running', 'completed', 'failed');

-- One bulk resend. A dispatch worker creates its deliveries page by page in
-- (time_created, id) order of the failed deliveries that it matches, and
-- stores where it stopped in the cursor columns, so that a resend survives
-- a crash and continues where the last committed page ended.
CREATE TABLE "webhook_resend_batch" (
    "id" UUID NOT NULL,
    -- The receiver whose failed deliveries are resent; NULL for every live
    -- receiver.
    "rx_id" UUID,
    -- Range of the failed deliveries' time_created: since is inclusive
    -- (NULL for no lower bound), until exclusive.
    "time_since" TIMESTAMPTZ(6),
    "time_until" TIMESTAMPTZ(6) NOT NULL,
    "state" "webhook_resend_batch_state" NOT NULL DEFAULT 'running',
    -- Failed deliveries read so far, and resend deliveries created for them.
    "num_matched" INTEGER NOT NULL DEFAULT 0,
    "num_created" INTEGER NOT NULL DEFAULT 0,
    -- Pages committed so far; the job of the next page is named after it.
    "num_steps" INTEGER NOT NULL DEFAULT 0,
    "cursor_time_created" TIMESTAMPTZ(6),
    "cursor_id" UUID,
    "error" TEXT,
    "time_created" TIMESTAMPTZ(6) NOT NULL,
    "time_modified" TIMESTAMPTZ(6) NOT NULL,
    "time_completed" TIMESTAMPTZ(6),

    CONSTRAINT "webhook_resend_batch_pkey" PRIMARY KEY ("id")
);

ALTER TABLE "webhook_resend_batch" ADD CONSTRAINT "webhook_resend_batch_rx_id_fkey"
    FOREIGN KEY ("rx_id") REFERENCES "webhook_rx"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "webhook_resend_batch" ADD CONSTRAINT "webhook_resend_batch_completed_iff_finished"
    CHECK (("state" = 'running') = ("time_completed" IS NULL));
ALTER TABLE "webhook_resend_batch" ADD CONSTRAINT "webhook_resend_batch_failed_has_error"
    CHECK ("state" <> 'failed' OR "error" IS NOT NULL);
ALTER TABLE "webhook_resend_batch" ADD CONSTRAINT "webhook_resend_batch_range_ordered"
    CHECK ("time_since" IS NULL OR "time_since" <= "time_until");
ALTER TABLE "webhook_resend_batch" ADD CONSTRAINT "webhook_resend_batch_cursor_complete"
    CHECK (("cursor_time_created" IS NULL) = ("cursor_id" IS NULL));
ALTER TABLE "webhook_resend_batch" ADD CONSTRAINT "webhook_resend_batch_counts_valid"
    CHECK ("num_created" >= 0 AND "num_created" <= "num_matched" AND "num_steps" >= 0);

-- Unfinished resends, which the dispatch workers' resend sweeper reads.
CREATE INDEX "lookup_unfinished_webhook_resend_batches"
    ON "webhook_resend_batch"("time_created", "id") WHERE "time_completed" IS NULL;

-- The resend that created a delivery, so that a resend can count how many
-- of its deliveries are pending, delivered or failed.
ALTER TABLE "webhook_delivery" ADD COLUMN "resend_batch_id" UUID;
ALTER TABLE "webhook_delivery" ADD CONSTRAINT "webhook_delivery_resend_batch_id_fkey"
    FOREIGN KEY ("resend_batch_id") REFERENCES "webhook_resend_batch"("id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "webhook_delivery" ADD CONSTRAINT "webhook_delivery_resend_batch_only_on_resend"
    CHECK ("resend_batch_id" IS NULL OR "triggered_by" = 'resend');
CREATE INDEX "lookup_webhook_deliveries_by_resend_batch"
    ON "webhook_delivery"("resend_batch_id", "state") WHERE "resend_batch_id" IS NOT NULL;

-- GET /v1/deliveries filtered by time alone, or not filtered at all. The
-- other filter combinations use the indexes by receiver, by receiver and
-- state, and by state.
-- NOTE: the migration runs in a transaction, so these indexes are built
-- without CONCURRENTLY and block writes to webhook_delivery while they are
-- built.
CREATE INDEX "lookup_webhook_deliveries_by_time"
    ON "webhook_delivery"("time_created", "id");
