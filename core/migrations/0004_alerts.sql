-- Alerts raised by the rule engine (owned by alerts/).

CREATE TABLE alerts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    rule_id text NOT NULL,
    rule_version integer NOT NULL,
    severity text NOT NULL CHECK (severity IN ('yellow', 'red')),
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    code text,
    direction text CHECK (direction IN ('low', 'high')),
    first_value double precision,
    last_value double precision,
    first_measured_at timestamptz NOT NULL,
    last_measured_at timestamptz NOT NULL,
    occurrences integer NOT NULL DEFAULT 1 CHECK (occurrences > 0),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- One alert per patient and rule until it is resolved: a repeat updates it.
CREATE UNIQUE INDEX alerts_one_unresolved_per_rule ON alerts (patient_id, rule_id)
    WHERE state <> 'resolved';
CREATE INDEX alerts_unresolved_by_time ON alerts (updated_at DESC) WHERE state <> 'resolved';
