-- The dashboard's requests chart (issue 14): HTTP requests made while processing mail, per
-- hour and service (graph, psa), with how many were throttled (429) or failed (5xx, or no
-- answer). Kept by a trigger on insert only: pruning old attempts does not rewrite history.
CREATE TABLE request_hourly_counts (
    -- 'YYYY-MM-DDTHH' of started_at (UTC)
    hour      TEXT NOT NULL,
    service   TEXT NOT NULL,
    requests  INTEGER NOT NULL,
    throttled INTEGER NOT NULL,
    failed    INTEGER NOT NULL,
    PRIMARY KEY (hour, service)
) WITHOUT ROWID;

INSERT INTO request_hourly_counts (hour, service, requests, throttled, failed)
    SELECT substr(started_at, 1, 13), service, COUNT(*),
           SUM(status = 429), SUM(status IS NULL OR status >= 500)
    FROM attempt_requests GROUP BY 1, 2;

CREATE TRIGGER request_hourly_insert AFTER INSERT ON attempt_requests BEGIN
    INSERT INTO request_hourly_counts (hour, service, requests, throttled, failed)
        VALUES (substr(new.started_at, 1, 13), new.service, 1,
                new.status IS 429, new.status IS NULL OR new.status >= 500)
        ON CONFLICT (hour, service) DO UPDATE SET
            requests = requests + 1,
            throttled = throttled + excluded.throttled,
            failed = failed + excluded.failed;
END;
