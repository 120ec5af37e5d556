-- emc:no-transaction
-- The new release looks images up by owner_id. CONCURRENTLY builds the index without blocking writes; it cannot
-- run in a transaction, so this step runs statement by statement (a crashed build is dropped and rebuilt).
CREATE INDEX CONCURRENTLY IF NOT EXISTS images_owner_id_idx ON images (owner_id);
