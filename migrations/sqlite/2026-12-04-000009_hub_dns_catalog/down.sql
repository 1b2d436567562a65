DROP TABLE "hub_dns_catalog";
