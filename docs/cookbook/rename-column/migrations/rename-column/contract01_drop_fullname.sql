-- No old-release task runs any more: nothing reads or writes fullname.
DROP TRIGGER customers_sync_display_name ON customers;
DROP FUNCTION customers_sync_display_name();
ALTER TABLE customers VALIDATE CONSTRAINT customers_display_name_present;
ALTER TABLE customers ALTER COLUMN display_name SET NOT NULL;
ALTER TABLE customers DROP CONSTRAINT customers_display_name_present;
ALTER TABLE customers DROP COLUMN fullname;
