-- Checks the rows written before expand01. It scans orders holding a lock that lets both releases keep writing;
-- it runs in contract so that the scan does not hold up expand, and the new release is rolled out before it.
ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk;
