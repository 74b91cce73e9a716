-- Retention (issue 14): old attempts (with their requests and log lines) and old request
-- bodies are pruned in small batches; these indexes find the oldest without a scan. An email's
-- own row is kept (its de-duplication key keeps it from being processed twice).
CREATE INDEX processing_attempts_started ON processing_attempts (started_at);
CREATE INDEX attempt_requests_with_bodies ON attempt_requests (started_at)
    WHERE request_body IS NOT NULL OR response_body IS NOT NULL;
