-- prisma-outbox: the outbox table and the publication the worker streams.
-- Column names are Debezium's outbox defaults, so Debezium's outbox event router can read this
-- table unchanged. Only inserts are published: the worker never needs updates or deletes, and
-- retention deletes must not become events.
CREATE TABLE "outbox" (
    "id"            UUID NOT NULL,
    "aggregatetype" TEXT NOT NULL,
    "aggregateid"   TEXT NOT NULL,
    "type"          TEXT NOT NULL,
    "payload"       JSONB NOT NULL,
    "headers"       JSONB,
    "topic"         TEXT,
    "created_at"    TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "outbox_pkey" PRIMARY KEY ("id")
);

CREATE PUBLICATION "prisma_outbox" FOR TABLE "outbox" WITH (publish = 'insert');
