-- emc:no-transaction
-- ADD CONSTRAINT ... UNIQUE builds its index under a lock that blocks writes. Build the unique index concurrently
-- instead (it enforces uniqueness from the moment it is valid); contract02 turns it into the constraint. If rows
-- already share a reference, the build fails naming the duplicate: remove duplicates in a migrate step of an
-- earlier release first.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS orders_reference_key ON orders (reference);
