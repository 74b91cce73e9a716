-- Why a delegated mailbox must be signed in again (its refresh grant was revoked or expired:
-- invalid_grant), NULL while its sign-in works. Set by the engine, which then stops asking the
-- token endpoint for that mailbox; cleared by the next successful sign-in.
ALTER TABLE mailboxes ADD COLUMN sign_in_required TEXT;
