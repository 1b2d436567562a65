DROP INDEX "hub_dns_change_zone_serial";
