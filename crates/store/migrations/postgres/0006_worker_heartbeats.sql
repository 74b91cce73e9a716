-- Every Mailroom process on a database says it is alive (issue 16; SQLite: 0025): the
-- console lists the workers and warns when none processes mail.
CREATE TABLE worker_heartbeats (
    id         TEXT PRIMARY KEY NOT NULL,
    host       TEXT NOT NULL,
    pid        BIGINT NOT NULL,
    version    TEXT NOT NULL,
    role       TEXT NOT NULL,
    processing BIGINT NOT NULL,
    started_at TEXT COLLATE "C" NOT NULL,
    seen_at    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX worker_heartbeats_seen ON worker_heartbeats (seen_at);
