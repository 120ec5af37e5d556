-- A foreign key added plainly scans orders while holding a lock that blocks writes to both tables. NOT VALID makes
-- it a catalog change: enforced for every write from now on, existing rows checked later (contract01) by VALIDATE,
-- which does not block writes. Both releases already write only orders of existing customers.
ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;
