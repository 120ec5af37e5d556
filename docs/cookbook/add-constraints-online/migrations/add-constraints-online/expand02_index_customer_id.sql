-- emc:no-transaction
-- The foreign key's checks on customer deletes look orders up by customer_id: index it. CONCURRENTLY builds the
-- index without blocking writes; it cannot run in a transaction, so this step runs statement by statement.
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);
