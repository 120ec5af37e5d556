-- emc:keyset table=images key=id
-- emc:pending SELECT count(*) FROM images WHERE visibility IS NULL
UPDATE images
SET visibility = CASE WHEN is_public THEN 'public' ELSE 'private' END
WHERE id BETWEEN :from_key AND :to_key
  AND visibility IS NULL;
