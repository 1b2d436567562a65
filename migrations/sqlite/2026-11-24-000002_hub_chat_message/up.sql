-- Chat history. Author fields are copied in, not joined, so history survives
-- a deleted user and guests (no user id) fit too.
CREATE TABLE "hub_chat_message" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "room" varchar(64) NOT NULL,
    "user_id" integer NULL,
    "username" varchar(150) NOT NULL,
    "is_staff" bool NOT NULL,
    "body" text NOT NULL,
    "sent_at" datetime NOT NULL
);
CREATE INDEX "hub_chat_message_room_id" ON "hub_chat_message" ("room", "id");
