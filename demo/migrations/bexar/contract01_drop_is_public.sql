-- No old-release task runs any more: nothing writes is_public. Drop the trigger, then the column.
DROP TRIGGER images_sync_visibility ON images;
DROP FUNCTION images_sync_visibility();
ALTER TABLE images DROP COLUMN is_public;
-- Promises what contract03 enforces: every write from now on has a visibility (the running release always writes
-- one). NOT VALID: existing rows are not scanned here, under this step's exclusive lock, but by contract03's
-- VALIDATE, in a transaction of its own that lets writes go on.
ALTER TABLE images ADD CONSTRAINT images_visibility_present CHECK (visibility IS NOT NULL) NOT VALID;
