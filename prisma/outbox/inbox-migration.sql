-- prisma-outbox: the inbox table of consumers run with `createInbox` (prisma-outbox/inbox).
-- One row per event a consumer has seen: the primary key (consumer, event_id) is what makes a
-- record seen twice a no-op. The runner inserts the row in the same transaction as the handler's
-- writes, so the row exists exactly when the effect does.
-- status: handled | failed (the handler kept throwing) | waiting (held behind a failed record of
-- its key) | poison (not an outbox event). Parked rows keep the record's value and headers so
-- `retryParked` can run them later; handled rows keep neither.
CREATE TABLE "inbox" (
    "consumer"    TEXT NOT NULL,
    "event_id"    TEXT NOT NULL,
    "status"      TEXT NOT NULL,
    "type"        TEXT,
    "key"         TEXT,
    "topic"       TEXT NOT NULL,
    "partition"   INTEGER NOT NULL,
    "offset"      BIGINT NOT NULL,
    "value"       TEXT,
    "headers"     JSONB,
    "error"       TEXT,
    "attempts"    INTEGER NOT NULL DEFAULT 0,
    "received_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "handled_at"  TIMESTAMPTZ(6),

    CONSTRAINT "inbox_pkey" PRIMARY KEY ("consumer", "event_id")
);

-- Every record asks whether its key is held behind a parked record: this index holds only the
-- parked rows, so the question stays cheap however many rows were handled.
CREATE INDEX "inbox_parked_idx" ON "inbox" ("consumer", "key") WHERE "status" <> 'handled';
-- Retention deletes handled rows by age.
CREATE INDEX "inbox_handled_at_idx" ON "inbox" ("handled_at") WHERE "status" = 'handled';
