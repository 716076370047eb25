-- Payload filters on subscriptions. Written by hand: Prisma's schema
-- language cannot express functions or generated columns.

-- Reads an event's stored JSON text as jsonb for filter evaluation, or
-- returns NULL when jsonb cannot hold it: jsonb rejects U+0000 and unpaired
-- surrogates, which the json check on webhook_event lets through. Dispatch
-- must not fail on such an event, so its filtered subscriptions simply do
-- not match. Only text with a \u escape can hit either case, so the rest
-- skips the subtransaction that the EXCEPTION block costs.
CREATE FUNCTION "webhook_event_data_jsonb"(data TEXT) RETURNS JSONB
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF strpos(data, '\u') = 0 THEN
        RETURN data::jsonb;
    END IF;
    BEGIN
        RETURN data::jsonb;
    EXCEPTION
        -- U+0000 raises untranslatable_character, an unpaired surrogate
        -- invalid_text_representation.
        WHEN untranslatable_character OR invalid_text_representation THEN
            RETURN NULL;
    END;
END
$$;

-- The predicate in PostgreSQL's parsed form, which dispatch evaluates
-- without parsing the text for every event. Evaluating 5000 stored
-- predicates took about a third of the time of parsing and evaluating their
-- text (PostgreSQL 15, one measurement on a busy 2-vCPU machine). A text
-- that does not parse fails the insert, so a stored filter cannot make
-- dispatch fail.
ALTER TABLE "webhook_rx_subscription"
    ADD COLUMN "filter_jsonpath_compiled" JSONPATH
    GENERATED ALWAYS AS ("filter_jsonpath"::jsonpath) STORED;
