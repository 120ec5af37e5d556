-- The new release calls fullname display_name. RENAME COLUMN would break the old release at once, so: add the new
-- column, keep both in step with a trigger while both releases write, backfill (migrate01), drop the old (contract).
ALTER TABLE customers ADD COLUMN display_name text;
ALTER TABLE customers ADD CONSTRAINT customers_display_name_present CHECK (display_name IS NOT NULL) NOT VALID;

-- The new release inserts without fullname: the trigger fills it before the NOT NULL check.
CREATE FUNCTION customers_sync_display_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.display_name IS NULL THEN
      NEW.display_name := NEW.fullname;       -- an old-release writer
    ELSE
      NEW.fullname := NEW.display_name;       -- a new-release writer
    END IF;
  ELSIF NEW.display_name IS DISTINCT FROM OLD.display_name AND NEW.display_name IS NOT NULL THEN
    NEW.fullname := NEW.display_name;
  ELSIF NEW.fullname IS DISTINCT FROM OLD.fullname THEN
    NEW.display_name := NEW.fullname;
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER customers_sync_display_name BEFORE INSERT OR UPDATE ON customers
  FOR EACH ROW EXECUTE FUNCTION customers_sync_display_name();
