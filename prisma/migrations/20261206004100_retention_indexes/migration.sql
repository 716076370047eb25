-- Indexes for the retention job, written by hand; keep schema.prisma in step.

-- The retention job deletes dispatched events oldest first, and reads them
-- in (time_created, id) order.
CREATE INDEX "lookup_webhook_events_by_time"
    ON "webhook_event"("time_created", "id");

-- Deleting an event checks that no delivery refers to it, and the foreign
-- key's cascade looks deliveries up by event; without this index each of
-- them reads the whole delivery table. GET /v1/events/:id/deliveries reads
-- deliveries by event as well.
CREATE INDEX "lookup_webhook_deliveries_by_event"
    ON "webhook_delivery"("event_id");
