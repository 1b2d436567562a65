ALTER TABLE "hub_metric" DROP COLUMN "version";
