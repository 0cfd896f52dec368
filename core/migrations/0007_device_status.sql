-- What each device last told us about itself, and when we last heard from it (owned by devices/).

CREATE TABLE device_status (
    device_id text PRIMARY KEY REFERENCES devices ON DELETE CASCADE,
    online boolean,
    battery_pct real CHECK (battery_pct BETWEEN 0 AND 100),
    firmware text,
    signal_dbm real,
    backlog integer CHECK (backlog >= 0),
    reported_at timestamptz,
    last_seen_at timestamptz NOT NULL
);
