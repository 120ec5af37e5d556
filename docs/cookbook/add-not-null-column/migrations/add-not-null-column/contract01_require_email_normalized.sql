-- Every row has email_normalized now (migrate's pending query found none). VALIDATE scans the table without
-- blocking writes; SET NOT NULL then uses the validated constraint instead of scanning under an exclusive lock.
ALTER TABLE accounts VALIDATE CONSTRAINT accounts_email_normalized_present;
ALTER TABLE accounts ALTER COLUMN email_normalized SET NOT NULL;
ALTER TABLE accounts DROP CONSTRAINT accounts_email_normalized_present;
