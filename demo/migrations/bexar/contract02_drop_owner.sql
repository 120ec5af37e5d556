DROP TRIGGER images_sync_owner ON images;
DROP FUNCTION images_sync_owner();
ALTER TABLE images DROP COLUMN owner;
