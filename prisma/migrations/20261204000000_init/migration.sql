-- CreateEnum
CREATE TYPE "webhook_delivery_trigger" AS ENUM ('event', 'resend', 'probe');

-- CreateEnum
CREATE TYPE "webhook_delivery_state" AS ENUM ('pending', 'delivered', 'failed');

-- CreateEnum
CREATE TYPE "webhook_delivery_result" AS ENUM ('succeeded', 'failed_http_error', 'failed_unreachable', 'failed_timeout');

-- CreateTable
CREATE TABLE "webhook_rx" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "endpoint" TEXT NOT NULL,
    "time_created" TIMESTAMPTZ(6) NOT NULL,
    "time_modified" TIMESTAMPTZ(6) NOT NULL,
    "time_deleted" TIMESTAMPTZ(6),
    "secret_gen" BIGINT NOT NULL DEFAULT 0,
    "subscription_gen" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "webhook_rx_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "webhook_secret" (
    "id" UUID NOT NULL,
    "rx_id" UUID NOT NULL,
    "secret" TEXT NOT NULL,
    "time_created" TIMESTAMPTZ(6) NOT NULL,
    "time_modified" TIMESTAMPTZ(6) NOT NULL,
    "time_deleted" TIMESTAMPTZ(6),

    CONSTRAINT "webhook_secret_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "webhook_rx_subscription" (
    "rx_id" UUID NOT NULL,
    "event_class" TEXT NOT NULL,
    "is_glob" BOOLEAN NOT NULL DEFAULT false,
    "event_class_regex" TEXT,
    "time_created" TIMESTAMPTZ(6) NOT NULL,

    CONSTRAINT "webhook_rx_subscription_pkey" PRIMARY KEY ("rx_id","event_class")
);

-- CreateTable
CREATE TABLE "webhook_event" (
    "id" UUID NOT NULL,
    "event_class" TEXT NOT NULL,
    "event" TEXT NOT NULL,
    "time_created" TIMESTAMPTZ(6) NOT NULL,
    "time_modified" TIMESTAMPTZ(6) NOT NULL,
    "time_dispatched" TIMESTAMPTZ(6),
    "num_dispatched" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "webhook_event_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "webhook_delivery" (
    "id" UUID NOT NULL,
    "event_id" UUID NOT NULL,
    "rx_id" UUID NOT NULL,
    "triggered_by" "webhook_delivery_trigger" NOT NULL,
    "state" "webhook_delivery_state" NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "time_created" TIMESTAMPTZ(6) NOT NULL,
    "time_completed" TIMESTAMPTZ(6),
    "failure_reason" TEXT,
    "deliverator_id" TEXT,
    "time_leased" TIMESTAMPTZ(6),

    CONSTRAINT "webhook_delivery_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "webhook_delivery_attempt" (
    "id" UUID NOT NULL,
    "delivery_id" UUID NOT NULL,
    "attempt" INTEGER NOT NULL,
    "rx_id" UUID NOT NULL,
    "result" "webhook_delivery_result" NOT NULL,
    "response_status" INTEGER,
    "response_duration" INTEGER,
    "response_body" TEXT,
    "unreachable_reason" TEXT,
    "time_created" TIMESTAMPTZ(6) NOT NULL,
    "deliverator_id" TEXT NOT NULL,

    CONSTRAINT "webhook_delivery_attempt_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "lookup_webhook_subscriptions_by_rx" ON "webhook_rx_subscription"("rx_id");

-- CreateIndex
CREATE INDEX "lookup_webhook_rxs_for_event" ON "webhook_rx_subscription"("event_class");

-- CreateIndex
CREATE INDEX "lookup_webhook_dispatched_to_rx" ON "webhook_delivery"("rx_id", "event_id");

-- CreateIndex
CREATE INDEX "lookup_webhook_delivery_attempt_for_msg" ON "webhook_delivery_attempt"("delivery_id");

-- CreateIndex
CREATE UNIQUE INDEX "webhook_delivery_attempt_delivery_id_attempt_key" ON "webhook_delivery_attempt"("delivery_id", "attempt");

-- AddForeignKey
ALTER TABLE "webhook_secret" ADD CONSTRAINT "webhook_secret_rx_id_fkey" FOREIGN KEY ("rx_id") REFERENCES "webhook_rx"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "webhook_rx_subscription" ADD CONSTRAINT "webhook_rx_subscription_rx_id_fkey" FOREIGN KEY ("rx_id") REFERENCES "webhook_rx"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "webhook_delivery" ADD CONSTRAINT "webhook_delivery_event_id_fkey" FOREIGN KEY ("event_id") REFERENCES "webhook_event"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "webhook_delivery" ADD CONSTRAINT "webhook_delivery_rx_id_fkey" FOREIGN KEY ("rx_id") REFERENCES "webhook_rx"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "webhook_delivery_attempt" ADD CONSTRAINT "webhook_delivery_attempt_delivery_id_fkey" FOREIGN KEY ("delivery_id") REFERENCES "webhook_delivery"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "webhook_delivery_attempt" ADD CONSTRAINT "webhook_delivery_attempt_rx_id_fkey" FOREIGN KEY ("rx_id") REFERENCES "webhook_rx"("id") ON DELETE CASCADE ON UPDATE CASCADE;


-- The statements below are written by hand: Prisma's schema language cannot
-- express partial indexes or CHECK constraints. Keep them in sync with the
-- comments in schema.prisma.

-- A name identifies one live receiver; deleted receivers keep their rows.
CREATE UNIQUE INDEX "lookup_webhook_rx_by_name" ON "webhook_rx"("name") WHERE "time_deleted" IS NULL;

CREATE INDEX "lookup_webhook_secrets_by_rx" ON "webhook_secret"("rx_id") WHERE "time_deleted" IS NULL;

-- Glob subscriptions are matched in SQL against their compiled regular
-- expression; this index lets the dispatcher read only the glob rows.
CREATE INDEX "lookup_webhook_glob_subscriptions" ON "webhook_rx_subscription"("rx_id", "event_class_regex") WHERE "is_glob";

ALTER TABLE "webhook_rx_subscription" ADD CONSTRAINT "webhook_rx_subscription_regex_iff_glob"
    CHECK ("is_glob" = ("event_class_regex" IS NOT NULL));

-- The event column holds JSON text; the check keeps bad bytes out whatever
-- the writer.
ALTER TABLE "webhook_event" ADD CONSTRAINT "webhook_event_is_json"
    CHECK (json_typeof("event"::json) IS NOT NULL);
ALTER TABLE "webhook_event" ADD CONSTRAINT "webhook_event_num_dispatched_non_negative"
    CHECK ("num_dispatched" >= 0);
ALTER TABLE "webhook_event" ADD CONSTRAINT "webhook_event_num_dispatched_zero_until_dispatched"
    CHECK ("time_dispatched" IS NOT NULL OR "num_dispatched" = 0);

CREATE INDEX "lookup_undispatched_webhook_events" ON "webhook_event"("time_created", "id") WHERE "time_dispatched" IS NULL;

-- One delivery per event and receiver from dispatch; resends and probes may repeat.
CREATE UNIQUE INDEX "one_webhook_event_dispatch_per_rx" ON "webhook_delivery"("event_id", "rx_id") WHERE "triggered_by" = 'event';
CREATE INDEX "webhook_delivery_in_flight" ON "webhook_delivery"("time_created", "id") WHERE "time_completed" IS NULL;

ALTER TABLE "webhook_delivery" ADD CONSTRAINT "webhook_delivery_completed_iff_finished"
    CHECK (("state" = 'pending') = ("time_completed" IS NULL));
ALTER TABLE "webhook_delivery" ADD CONSTRAINT "webhook_delivery_attempts_non_negative"
    CHECK ("attempts" >= 0);

ALTER TABLE "webhook_delivery_attempt" ADD CONSTRAINT "webhook_delivery_attempt_number_positive"
    CHECK ("attempt" >= 1);
ALTER TABLE "webhook_delivery_attempt" ADD CONSTRAINT "webhook_delivery_attempt_response_iff_answered"
    CHECK (("result" IN ('succeeded', 'failed_http_error'))
        = ("response_status" IS NOT NULL AND "response_duration" IS NOT NULL));
ALTER TABLE "webhook_delivery_attempt" ADD CONSTRAINT "webhook_delivery_attempt_no_response_unless_answered"
    CHECK (("result" IN ('succeeded', 'failed_http_error'))
        OR ("response_status" IS NULL AND "response_duration" IS NULL));
ALTER TABLE "webhook_delivery_attempt" ADD CONSTRAINT "webhook_delivery_attempt_reason_iff_unreachable"
    CHECK (("result" = 'failed_unreachable') = ("unreachable_reason" IS NOT NULL));
