-- ims-event-worker inbox: one row per (event, handler) whose effect committed (worker.inbox.claim).
-- Idempotent: `ims-worker inbox init --dsn DSN` runs this file; teams with their own migration tool apply it
-- as it is. Rows must be kept longer than the longest redelivery, replay or redrive horizon (README).
CREATE TABLE IF NOT EXISTS ims_worker_inbox (
    event_id   text        NOT NULL,
    handler    text        NOT NULL,
    task_id    text        NOT NULL DEFAULT '',
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, handler)
);
-- `ims-worker inbox purge --older-than 30d` deletes by age in batches.
CREATE INDEX IF NOT EXISTS ims_worker_inbox_applied_at ON ims_worker_inbox (applied_at);
