-- The stored password verifier of a role (superusers only); compared, never shown.
SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %(rolename)s
