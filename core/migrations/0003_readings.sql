-- Readings and the quarantine for what could not become one (written by ingest/).

-- The key makes redelivery and gateway replays harmless: a device cannot take the same
-- measurement twice at one instant. It includes the time column, as a hypertable requires.
CREATE TABLE readings (
    device_id text NOT NULL,
    code text NOT NULL,
    measured_at timestamptz NOT NULL,
    patient_id uuid NOT NULL,
    value double precision NOT NULL,
    unit text NOT NULL,
    msg_id uuid NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (device_id, code, measured_at)
);
CREATE INDEX readings_patient_code_time ON readings (patient_id, code, measured_at DESC);

CREATE TABLE quarantine (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL,
    channel text NOT NULL,
    topic text,
    device_id text,
    msg_id uuid,
    reason text NOT NULL,
    detail text NOT NULL,
    payload bytea
);
CREATE INDEX quarantine_reason_time ON quarantine (reason, received_at);
CREATE INDEX quarantine_device_time ON quarantine (device_id, received_at);
