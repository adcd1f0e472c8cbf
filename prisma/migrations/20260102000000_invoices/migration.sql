-- The example consumer's own table (test/demo/billing.ts, the inbox tests). The inbox migration
-- comes from prisma/outbox/inbox-migration.sql, the file `outbox-worker init --inbox` copies.
-- event_id is deliberately not unique: an event applied twice shows as two rows, which is what
-- the tests count; "applied" numbers the rows in the order they were written.
CREATE TABLE "invoices" (
    "applied"    BIGSERIAL NOT NULL,
    "event_id"   TEXT NOT NULL,
    "order_id"   TEXT NOT NULL,
    "seq"        INTEGER NOT NULL DEFAULT 0,
    "amount"     DECIMAL(12,2) NOT NULL,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "invoices_pkey" PRIMARY KEY ("applied")
);
