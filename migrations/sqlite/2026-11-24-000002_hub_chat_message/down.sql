DROP TABLE "hub_chat_message";
