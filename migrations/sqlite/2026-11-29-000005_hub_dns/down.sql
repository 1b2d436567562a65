DROP TABLE "hub_dns_change";
DROP TABLE "hub_dns_record";
DROP TABLE "hub_dns_zone";
