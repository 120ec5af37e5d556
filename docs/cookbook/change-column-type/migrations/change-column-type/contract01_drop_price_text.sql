-- No old-release task runs any more: nothing reads or writes the text price.
DROP TRIGGER products_sync_price ON products;
DROP FUNCTION products_sync_price();
ALTER TABLE products VALIDATE CONSTRAINT products_price_cents_present;
ALTER TABLE products ALTER COLUMN price_cents SET NOT NULL;
ALTER TABLE products DROP CONSTRAINT products_price_cents_present;
ALTER TABLE products DROP COLUMN price;
