-- emc:keyset table=accounts key=id
-- emc:pending SELECT count(*) FROM accounts WHERE email_normalized IS NULL
-- Rows written before expand have no email_normalized yet; the trigger covers every row written since.
UPDATE accounts
SET email_normalized = lower(email)
WHERE id BETWEEN :from_key AND :to_key
  AND email_normalized IS NULL;
