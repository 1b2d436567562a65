-- The catalog zone's serial (RFC 9432): one row, moved on in the same
-- transaction as every zone made or deleted, so that secondaries following
-- the catalog see each change of the zones held as a new serial.
CREATE TABLE "hub_dns_catalog" (
    "id" integer NOT NULL PRIMARY KEY,
    "serial" bigint NOT NULL
);
INSERT INTO "hub_dns_catalog" ("id", "serial") VALUES (1, 1);
