-- The index exists and is valid (expand03): the constraint takes it over without a scan.
ALTER TABLE orders ADD CONSTRAINT orders_reference_key UNIQUE USING INDEX orders_reference_key;
