-- A secondary asking for the changes since the serial it holds is answered
-- from the changes after that serial.
CREATE INDEX "hub_dns_change_zone_serial" ON "hub_dns_change" ("zone_id", "serial");
