-- emc:keyset table=customers key=id
-- emc:pending SELECT count(*) FROM customers WHERE display_name IS NULL
UPDATE customers
SET display_name = fullname
WHERE id BETWEEN :from_key AND :to_key
  AND display_name IS NULL;
