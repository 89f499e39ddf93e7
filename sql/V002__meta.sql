-- Bookkeeping of the job itself: one row per run, and the cursors / checkpoints that
-- let an interrupted backfill resume and the nightly sync pick up where it stopped.
-- (meta.sql_migrations is created by the SQL runner before any file is applied.)
CREATE SCHEMA IF NOT EXISTS meta;

CREATE TABLE IF NOT EXISTS meta.sync_runs (
    run_id        VARCHAR PRIMARY KEY,
    command       VARCHAR NOT NULL,   -- backfill | sync | build
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    outcome       VARCHAR,            -- running | ok | failed:<exit code> ...
    exit_code     INTEGER,
    message       VARCHAR,
    objects       JSON,               -- {"customers": 120, "invoices": 3400, ...}
    requests      BIGINT,
    retries       BIGINT,
    rate_limited  BIGINT,             -- 429 answers received
    api_version   VARCHAR,            -- Stripe API version the data was fetched in
    since_month   VARCHAR
);

CREATE TABLE IF NOT EXISTS meta.sync_state (
    key         VARCHAR PRIMARY KEY,  -- e.g. backfill:since, backfill:slice:<account>:<kind>:<start>, events:cursor:<account>
    value       VARCHAR,
    updated_at  TIMESTAMPTZ NOT NULL
);
