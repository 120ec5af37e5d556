-- emc:keyset table=users key=id
-- emc:pending SELECT count(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM addresses a WHERE a.user_id = u.id)
-- Users written before expand have no address row yet; every write since has one. DO NOTHING: a row the
-- application wrote meanwhile is newer than this copy.
INSERT INTO addresses (user_id, street, city)
SELECT id, street, city FROM users
WHERE id BETWEEN :from_key AND :to_key
ON CONFLICT (user_id) DO NOTHING;
