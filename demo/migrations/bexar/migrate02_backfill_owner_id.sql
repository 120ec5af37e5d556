-- emc:keyset table=images key=id
-- emc:pending SELECT count(*) FROM images WHERE owner_id IS NULL
UPDATE images
SET owner_id = owner
WHERE id BETWEEN :from_key AND :to_key
  AND owner_id IS NULL;
