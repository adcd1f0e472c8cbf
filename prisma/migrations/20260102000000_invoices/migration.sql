-- The example consumer's own table (test/demo/billing.ts, the inbox tests). The inbox migration
-- comes from prisma/outbox/inbox-migration.sql, the file `outbox-worker init --inbox` copies.
CREATE TABLE "invoices" (
    "event_id"   TEXT NOT NULL,
    "order_id"   TEXT NOT NULL,
    "seq"        INTEGER NOT NULL DEFAULT 0,
    "amount"     DECIMAL(12,2) NOT NULL,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "invoices_pkey" PRIMARY KEY ("event_id")
);
