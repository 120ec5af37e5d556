-- No old-release task runs any more: nothing writes is_public. Drop the trigger, then the column.
DROP TRIGGER images_sync_visibility ON images;
DROP FUNCTION images_sync_visibility();
ALTER TABLE images DROP COLUMN is_public;
