-- DNS zones, their records, and the history of every change. A zone's
-- serial is bumped in the same transaction as each change (YYYYMMDDnn).
CREATE TABLE "hub_dns_zone" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "name" varchar(253) NOT NULL UNIQUE,
    "owner_id" integer NOT NULL REFERENCES "auth_user" ("id"),
    "serial" bigint NOT NULL,
    "created_at" datetime NOT NULL,
    "updated_at" datetime NOT NULL
);
CREATE INDEX "hub_dns_zone_owner_id" ON "hub_dns_zone" ("owner_id");

CREATE TABLE "hub_dns_record" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "zone_id" bigint NOT NULL REFERENCES "hub_dns_zone" ("id") ON DELETE CASCADE,
    "name" varchar(255) NOT NULL,
    "type" varchar(10) NOT NULL,
    "content" text NOT NULL,
    "ttl" integer NOT NULL,
    "priority" integer NULL,
    "weight" integer NULL,
    "port" integer NULL,
    "comment" text NULL,
    "version" bigint NOT NULL
);
CREATE INDEX "hub_dns_record_zone_id" ON "hub_dns_record" ("zone_id", "name");

-- Who changed what, kept apart from the user (copied name) so it outlives
-- a deleted account; `old` and `new` are the record as JSON text.
CREATE TABLE "hub_dns_change" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "zone_id" bigint NOT NULL REFERENCES "hub_dns_zone" ("id") ON DELETE CASCADE,
    "record_id" bigint NULL,
    "user_id" integer NOT NULL,
    "username" varchar(150) NOT NULL,
    "at" datetime NOT NULL,
    "serial" bigint NOT NULL,
    "action" varchar(16) NOT NULL,
    "old" text NULL,
    "new" text NULL
);
CREATE INDEX "hub_dns_change_zone_id" ON "hub_dns_change" ("zone_id", "id");
