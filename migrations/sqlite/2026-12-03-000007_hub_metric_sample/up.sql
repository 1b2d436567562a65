-- The last hour of each metric, a value per minute (the metric's value at
-- the end of that minute, or now for the current one), so a dashboard
-- opened or reloaded shows where its metrics came from. Rows older than an
-- hour are deleted by the ingest that next changes their metric.
CREATE TABLE "hub_metric_sample" (
    "user_id" integer NOT NULL,
    "name" varchar(64) NOT NULL,
    "minute" datetime NOT NULL,
    "value" real NOT NULL,
    PRIMARY KEY ("user_id", "name", "minute")
);
