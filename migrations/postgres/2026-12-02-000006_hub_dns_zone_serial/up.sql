-- The last serial of every zone name that was deleted. A zone created
-- again under that name starts above it: secondaries and caches compare
-- serials, and a lower one would read as "nothing new".
CREATE TABLE "hub_dns_deleted_zone" (
    "name" varchar(253) NOT NULL PRIMARY KEY,
    "serial" bigint NOT NULL
);
