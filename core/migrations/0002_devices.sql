-- Device registry (owned by devices/). The device id is what the broker and the topic know.

CREATE TABLE devices (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    kind text NOT NULL,
    vendor text,
    model text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Which patient a device measured for, over time. Overlaps are refused by
-- devices.service.do_assign_device under a row lock (no btree_gist on every server).
CREATE TABLE device_assignments (
    device_id text NOT NULL REFERENCES devices ON DELETE CASCADE,
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz CHECK (valid_to IS NULL OR valid_to > valid_from),
    PRIMARY KEY (device_id, valid_from)
);
CREATE INDEX device_assignments_patient ON device_assignments (patient_id);
