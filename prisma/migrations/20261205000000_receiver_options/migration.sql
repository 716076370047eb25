-- Receiver options for ordered delivery and rate limits, automatic
-- disabling, payload filters on subscriptions, and the indexes that list
-- deliveries by receiver, state and time. Written by hand, like the end of
-- the first migration; keep schema.prisma in step.

ALTER TABLE "webhook_rx"
    ADD COLUMN "ordered" BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN "rate_limit_per_second" INTEGER,
    ADD COLUMN "max_in_flight" INTEGER,
    ADD COLUMN "time_disabled" TIMESTAMPTZ(6),
    ADD COLUMN "disabled_reason" TEXT,
    ADD COLUMN "time_failing_since" TIMESTAMPTZ(6);

ALTER TABLE "webhook_rx" ADD CONSTRAINT "webhook_rx_rate_limit_positive"
    CHECK ("rate_limit_per_second" IS NULL OR "rate_limit_per_second" > 0);
ALTER TABLE "webhook_rx" ADD CONSTRAINT "webhook_rx_max_in_flight_positive"
    CHECK ("max_in_flight" IS NULL OR "max_in_flight" > 0);
ALTER TABLE "webhook_rx" ADD CONSTRAINT "webhook_rx_disabled_has_reason"
    CHECK (("time_disabled" IS NULL) = ("disabled_reason" IS NULL));

-- A filter is kept as the JSON the client sent and as the SQL/JSON path
-- predicate it compiles to, which dispatch evaluates in PostgreSQL.
ALTER TABLE "webhook_rx_subscription"
    ADD COLUMN "filter" JSONB,
    ADD COLUMN "filter_jsonpath" TEXT;

ALTER TABLE "webhook_rx_subscription" ADD CONSTRAINT "webhook_rx_subscription_filter_compiled"
    CHECK (("filter" IS NULL) = ("filter_jsonpath" IS NULL));

CREATE INDEX "lookup_webhook_deliveries_by_rx"
    ON "webhook_delivery"("rx_id", "time_created", "id");
CREATE INDEX "lookup_webhook_deliveries_by_rx_state"
    ON "webhook_delivery"("rx_id", "state", "time_created", "id");
CREATE INDEX "lookup_webhook_deliveries_by_state"
    ON "webhook_delivery"("state", "time_created", "id");
-- Pending deliveries of one receiver, for ordered delivery.
CREATE INDEX "lookup_webhook_pending_deliveries_by_rx"
    ON "webhook_delivery"("rx_id", "time_created", "id") WHERE "time_completed" IS NULL;
