-- emc:repeat-until-zero
-- emc:batch-size 500
-- emc:pending SELECT count(*) FROM images WHERE name <> btrim(name)
-- The new release matches names exactly; strip the stray spaces old imports left. The statement finds its own
-- work, at most :batch_size rows at a time, until no row changes.
UPDATE images
SET name = btrim(name)
WHERE id = ANY (ARRAY(SELECT id FROM images WHERE name <> btrim(name) LIMIT :batch_size));
