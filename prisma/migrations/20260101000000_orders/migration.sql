-- The example app's own table. The outbox migration comes from prisma/outbox/migration.sql,
-- the same file `outbox-worker init` copies into an app.
CREATE TABLE "orders" (
    "id"         SERIAL NOT NULL,
    "customer"   TEXT NOT NULL,
    "total"      DECIMAL(12,2) NOT NULL,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "orders_pkey" PRIMARY KEY ("id")
);
