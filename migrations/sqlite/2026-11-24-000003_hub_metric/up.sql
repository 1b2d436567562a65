-- Each user's dashboard metrics: one current value per name.
CREATE TABLE "hub_metric" (
    "user_id" integer NOT NULL,
    "name" varchar(64) NOT NULL,
    "value" real NOT NULL,
    "updated_at" datetime NOT NULL,
    PRIMARY KEY ("user_id", "name")
);
