-- Nothing writes users.street/city any more (the old release is gone): drop the copy and the columns.
DROP TRIGGER users_copy_address ON users;
DROP FUNCTION users_copy_address();
ALTER TABLE users DROP COLUMN street, DROP COLUMN city;
