-- The new release looks accounts up by email_normalized, which must never be NULL. Adding it NOT NULL at once would
-- fail (existing rows) or need a default the old release does not know about. So: add it nullable, and let a
-- trigger fill it for every row either release writes; the old release never names the column.
ALTER TABLE accounts ADD COLUMN email_normalized text;

-- Promises what contract will enforce. NOT VALID: checked for new writes from now on, existing rows not scanned.
ALTER TABLE accounts ADD CONSTRAINT accounts_email_normalized_present CHECK (email_normalized IS NOT NULL) NOT VALID;

CREATE FUNCTION accounts_normalize_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.email_normalized := lower(NEW.email);
  RETURN NEW;
END
$$;

CREATE TRIGGER accounts_normalize_email BEFORE INSERT OR UPDATE OF email, email_normalized ON accounts
  FOR EACH ROW EXECUTE FUNCTION accounts_normalize_email();
