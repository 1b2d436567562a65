DROP TABLE "hub_chat_room";
CREATE INDEX "hub_chat_message_room_id" ON "hub_chat_message" ("room", "id");
DROP INDEX "hub_chat_message_room_seq";
ALTER TABLE "hub_chat_message" DROP COLUMN "seq";
