-- No old-release task runs any more: nothing reads users.street/city, so the new release's address writes need not
-- be copied back. One table per contract step: a step that locked addresses and then users could deadlock with a
-- new-release transaction that writes users and then addresses (as inserting a user with its address does).
DROP TRIGGER addresses_copy_to_users ON addresses;
DROP FUNCTION addresses_copy_to_users();
