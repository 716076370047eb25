-- Ordered delivery: the next delivery of an ordered receiver is the pending
-- one whose event came first, by (event time_created, event id). Written by
-- hand, like the end of the first migration; keep schema.prisma in step.

-- The event's creation time, copied onto each delivery, so that the next
-- delivery of a receiver is the first entry of an index instead of a sort
-- of all its pending deliveries joined with their events. A trigger fills
-- it on every insert, whichever statement inserts the delivery. Events never
-- change their time_created, so the copy stays true.
ALTER TABLE "webhook_delivery" ADD COLUMN "event_time_created" TIMESTAMPTZ(6);

CREATE FUNCTION "webhook_delivery_copy_event_time"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT "time_created" INTO NEW."event_time_created"
    FROM "webhook_event" WHERE "id" = NEW."event_id";
    RETURN NEW;
END
$$;

CREATE TRIGGER "webhook_delivery_copy_event_time"
    BEFORE INSERT ON "webhook_delivery"
    FOR EACH ROW EXECUTE FUNCTION "webhook_delivery_copy_event_time"();

-- Only pending deliveries are ordered, so finished ones keep NULL.
UPDATE "webhook_delivery" d SET "event_time_created" = e."time_created"
FROM "webhook_event" e
WHERE e."id" = d."event_id" AND d."time_completed" IS NULL;

-- Pending deliveries of one receiver in delivery order.
CREATE INDEX "lookup_webhook_pending_deliveries_by_rx_event"
    ON "webhook_delivery"("rx_id", "event_time_created", "event_id", "time_created", "id")
    WHERE "time_completed" IS NULL;

-- The delivery that the last ordered claim of a receiver took. Ordered
-- claims of one receiver run one at a time and take only its next delivery,
-- so this is the one delivery of the receiver that such a claim can have
-- left in flight. The next claim checks that delivery's lease instead of
-- reading every pending delivery of the receiver. delivery_id has no foreign
-- key, so that deleting old deliveries needs no change here; an id whose
-- delivery is gone or finished blocks nothing.
CREATE TABLE "webhook_rx_ordered_claim" (
    "rx_id" UUID NOT NULL,
    "delivery_id" UUID NOT NULL,
    "time_claimed" TIMESTAMPTZ(6) NOT NULL,

    CONSTRAINT "webhook_rx_ordered_claim_pkey" PRIMARY KEY ("rx_id")
);

ALTER TABLE "webhook_rx_ordered_claim" ADD CONSTRAINT "webhook_rx_ordered_claim_rx_id_fkey"
    FOREIGN KEY ("rx_id") REFERENCES "webhook_rx"("id") ON DELETE CASCADE ON UPDATE CASCADE;
