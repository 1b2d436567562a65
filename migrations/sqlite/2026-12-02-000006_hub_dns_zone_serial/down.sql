DROP TABLE "hub_dns_deleted_zone";
