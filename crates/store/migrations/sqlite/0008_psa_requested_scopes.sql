-- Mailroom requests the permissions it uses rather than "all": an API application set up as
-- the integration wizard says (those permissions only) refuses a token for "all". Connections
-- saved with the old default are moved over; see crates/engine/src/integration.rs.
UPDATE psa_connections SET scopes = 'read:tickets edit:tickets read:customers edit:customers'
    WHERE scopes = 'all';
