-- Each user's dashboard metrics: one current value per name.
CREATE TABLE "hub_metric" (
    "user_id" integer NOT NULL,
    "name" varchar(64) NOT NULL,
    "value" double precision NOT NULL,
    "updated_at" timestamp with time zone NOT NULL,
    PRIMARY KEY ("user_id", "name")
);
