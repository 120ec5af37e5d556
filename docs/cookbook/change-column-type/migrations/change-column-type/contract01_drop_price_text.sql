-- No old-release task runs any more: nothing reads or writes the text price. VALIDATE comes first: it scans the
-- table under a lock that blocks no write, before the statements below take their ACCESS EXCLUSIVE locks (which
-- are then held only for a moment, SET NOT NULL using the validated constraint instead of a scan).
ALTER TABLE products VALIDATE CONSTRAINT products_price_cents_present;
ALTER TABLE products ALTER COLUMN price_cents SET NOT NULL;
ALTER TABLE products DROP CONSTRAINT products_price_cents_present;
DROP TRIGGER products_sync_price ON products;
DROP FUNCTION products_sync_price();
ALTER TABLE products DROP COLUMN price;
