-- A per-row counter bumped by every change, in commit order (the row lock
-- orders concurrent writers), so a reader can tell which of two values of a
-- metric is the newer one whatever order it hears of them in.
ALTER TABLE "hub_metric" ADD COLUMN "version" bigint NOT NULL DEFAULT 0;
