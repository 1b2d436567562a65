DROP TABLE "hub_metric_sample";
