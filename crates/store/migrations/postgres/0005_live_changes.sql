-- Live changes for the desktop console (issue 16): every inbound-log row written and every
-- problem recorded is announced on the channel `mailroom_changes`, with the writer's
-- application_name (each store connects under its own), so that a process skips its own
-- changes and shows everyone else's. PostgreSQL delivers a notification when the writing
-- transaction commits, and folds identical ones within a transaction into one.
CREATE FUNCTION mailroom_announce_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mailroom_changes', json_build_object(
        'table', TG_TABLE_NAME,
        'id', NEW.id,
        'new', TG_OP = 'INSERT',
        'from', current_setting('application_name'))::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER inbound_emails_announce_new AFTER INSERT ON inbound_emails
    FOR EACH ROW EXECUTE FUNCTION mailroom_announce_change();
-- Only what the log shows: a claim's renewal (every third of its lease) is not a change.
CREATE TRIGGER inbound_emails_announce_change AFTER UPDATE ON inbound_emails
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
        OR OLD.attempts IS DISTINCT FROM NEW.attempts
        OR OLD.outcome IS DISTINCT FROM NEW.outcome
        OR OLD.ticket_id IS DISTINCT FROM NEW.ticket_id
        OR OLD.action_id IS DISTINCT FROM NEW.action_id
        OR OLD.error_message IS DISTINCT FROM NEW.error_message
        OR OLD.next_attempt_at IS DISTINCT FROM NEW.next_attempt_at)
    EXECUTE FUNCTION mailroom_announce_change();
CREATE TRIGGER notifications_announce AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION mailroom_announce_change();
-- An attempt's processing log is written when the attempt ends: its end is announced too, so
-- that a console's live tail shows another worker's steps.
CREATE TRIGGER processing_attempts_announce AFTER UPDATE OF finished_at ON processing_attempts
    FOR EACH ROW WHEN (OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL)
    EXECUTE FUNCTION mailroom_announce_change();
