-- Release bexar replaces the boolean is_public with a visibility column ('public' or 'private'), as Glance did.
-- Both releases run side by side until contract: a trigger keeps the two columns in step whichever release writes.
ALTER TABLE images ADD COLUMN visibility text;

ALTER TABLE images ADD CONSTRAINT images_visibility_values CHECK (visibility IN ('public', 'private')) NOT VALID;

CREATE FUNCTION images_sync_visibility() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.visibility IS NULL THEN
      NEW.visibility := CASE WHEN NEW.is_public THEN 'public' ELSE 'private' END;   -- an old-release writer
    ELSE
      NEW.is_public := NEW.visibility = 'public';                                  -- a new-release writer
    END IF;
  ELSIF NEW.visibility IS DISTINCT FROM OLD.visibility AND NEW.visibility IS NOT NULL THEN
    NEW.is_public := NEW.visibility = 'public';
  ELSIF NEW.is_public IS DISTINCT FROM OLD.is_public THEN
    NEW.visibility := CASE WHEN NEW.is_public THEN 'public' ELSE 'private' END;
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER images_sync_visibility BEFORE INSERT OR UPDATE ON images
  FOR EACH ROW EXECUTE FUNCTION images_sync_visibility();
