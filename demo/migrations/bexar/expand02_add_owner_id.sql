-- Release bexar renames owner to owner_id. A rename would break the old release, so: add the new column, keep
-- both in step with a trigger while both releases write, backfill (migrate02), drop the old one (contract02).
ALTER TABLE images ADD COLUMN owner_id text;

CREATE FUNCTION images_sync_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.owner_id IS NULL THEN
      NEW.owner_id := NEW.owner;
    ELSE
      NEW.owner := NEW.owner_id;
    END IF;
  ELSIF NEW.owner_id IS DISTINCT FROM OLD.owner_id AND NEW.owner_id IS NOT NULL THEN
    NEW.owner := NEW.owner_id;
  ELSIF NEW.owner IS DISTINCT FROM OLD.owner THEN
    NEW.owner_id := NEW.owner;
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER images_sync_owner BEFORE INSERT OR UPDATE ON images
  FOR EACH ROW EXECUTE FUNCTION images_sync_owner();
