-- No old-release task runs any more: nothing reads or writes fullname. VALIDATE comes first: it scans the table
-- under a lock that blocks no write, before the statements below take their ACCESS EXCLUSIVE locks (which are then
-- held only for a moment, SET NOT NULL using the validated constraint instead of a scan).
ALTER TABLE customers VALIDATE CONSTRAINT customers_display_name_present;
ALTER TABLE customers ALTER COLUMN display_name SET NOT NULL;
ALTER TABLE customers DROP CONSTRAINT customers_display_name_present;
DROP TRIGGER customers_sync_display_name ON customers;
DROP FUNCTION customers_sync_display_name();
ALTER TABLE customers DROP COLUMN fullname;
