-- The new release keeps prices as whole cents (bigint). ALTER COLUMN ... TYPE would rewrite the table under an
-- exclusive lock and break the old release, so: a new column in the new type, kept in step with the old one by a
-- trigger in both directions, backfilled by migrate01, the old column dropped in contract.
ALTER TABLE products ADD COLUMN price_cents bigint;
ALTER TABLE products ADD CONSTRAINT products_price_cents_present CHECK (price_cents IS NOT NULL) NOT VALID;

CREATE FUNCTION products_sync_price() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.price_cents IS NULL THEN
      NEW.price_cents := round(NEW.price::numeric * 100);               -- an old-release writer
    ELSE
      NEW.price := to_char(NEW.price_cents / 100.0, 'FM999999999999990.00');  -- a new-release writer
    END IF;
  ELSIF NEW.price_cents IS DISTINCT FROM OLD.price_cents AND NEW.price_cents IS NOT NULL THEN
    NEW.price := to_char(NEW.price_cents / 100.0, 'FM999999999999990.00');
  ELSIF NEW.price IS DISTINCT FROM OLD.price THEN
    NEW.price_cents := round(NEW.price::numeric * 100);
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER products_sync_price BEFORE INSERT OR UPDATE ON products
  FOR EACH ROW EXECUTE FUNCTION products_sync_price();
