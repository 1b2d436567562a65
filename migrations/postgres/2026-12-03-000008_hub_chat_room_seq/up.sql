-- A message's id in its room: contiguous per room and taken under the
-- room's row in `hub_chat_room` inside the message's own transaction, so ids
-- commit in their order and a node that sees id n knows that every id below
-- it is already in the database. The global `id` alone gave no such order:
-- two nodes could commit 45 and 46 and publish 46 first.
--
-- Messages stored before keep their number (`seq` = `id`): they still rise
-- within each room, and a `?since=` a client holds from before stays exact.
ALTER TABLE "hub_chat_message" ADD COLUMN "seq" bigint NULL;
UPDATE "hub_chat_message" SET "seq" = "id";
ALTER TABLE "hub_chat_message" ALTER COLUMN "seq" SET NOT NULL;
CREATE UNIQUE INDEX "hub_chat_message_room_seq" ON "hub_chat_message" ("room", "seq");
DROP INDEX "hub_chat_message_room_id";

CREATE TABLE "hub_chat_room" (
    "room" varchar(64) NOT NULL PRIMARY KEY,
    "last_seq" bigint NOT NULL
);
INSERT INTO "hub_chat_room" ("room", "last_seq")
    SELECT "room", max("seq") FROM "hub_chat_message" GROUP BY "room";
