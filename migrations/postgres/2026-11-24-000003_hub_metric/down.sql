DROP TABLE "hub_metric";
