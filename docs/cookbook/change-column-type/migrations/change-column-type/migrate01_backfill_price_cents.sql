-- emc:keyset table=products key=id
-- emc:pending SELECT count(*) FROM products WHERE price_cents IS NULL
-- A price that is not a number fails this step with SQLSTATE 22P02 naming the value: fix the row, run again.
UPDATE products
SET price_cents = round(price::numeric * 100)
WHERE id BETWEEN :from_key AND :to_key
  AND price_cents IS NULL;
