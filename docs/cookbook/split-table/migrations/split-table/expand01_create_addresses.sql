-- The new release keeps addresses in a table of their own, one row per user. While both releases run, the old one
-- writes users.street/city and the new one writes addresses: triggers copy each write to the other side. The
-- pg_trigger_depth() guard stops a copy from being copied back.
CREATE TABLE addresses (
  user_id bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  street text,
  city text
);

CREATE FUNCTION users_copy_address() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF pg_trigger_depth() > 1 THEN
    RETURN NULL;
  END IF;
  INSERT INTO addresses (user_id, street, city) VALUES (NEW.id, NEW.street, NEW.city)
  ON CONFLICT (user_id) DO UPDATE SET street = excluded.street, city = excluded.city;
  RETURN NULL;
END
$$;

CREATE TRIGGER users_copy_address AFTER INSERT OR UPDATE OF street, city ON users
  FOR EACH ROW EXECUTE FUNCTION users_copy_address();

CREATE FUNCTION addresses_copy_to_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF pg_trigger_depth() > 1 THEN
    RETURN NULL;
  END IF;
  -- Only when the values differ: migrate01's copies (equal to what users holds) then neither write nor lock users,
  -- so a batch never waits on a users row an old-release writer holds while that writer waits on the batch's
  -- address row (a deadlock).
  UPDATE users SET street = NEW.street, city = NEW.city
  WHERE id = NEW.user_id AND (street IS DISTINCT FROM NEW.street OR city IS DISTINCT FROM NEW.city);
  RETURN NULL;
END
$$;

CREATE TRIGGER addresses_copy_to_users AFTER INSERT OR UPDATE ON addresses
  FOR EACH ROW EXECUTE FUNCTION addresses_copy_to_users();
