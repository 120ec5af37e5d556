-- Every row has a visibility now. VALIDATE checks the rows without blocking writes; SET NOT NULL then uses the
-- validated constraint instead of scanning the table under an exclusive lock.
ALTER TABLE images VALIDATE CONSTRAINT images_visibility_values;
ALTER TABLE images VALIDATE CONSTRAINT images_visibility_present;
ALTER TABLE images ALTER COLUMN visibility SET NOT NULL;
ALTER TABLE images DROP CONSTRAINT images_visibility_present;
