-- Devices provisioned without SQL (issue 14): what a device is, whether it may still connect,
-- and its broker login's password hash, from which the broker's configuration is exported.

ALTER TABLE devices
    ADD COLUMN serial text CHECK (length(serial) <= 64),
    -- The measurements (LOINC codes) the device produces, as registered.
    ADD COLUMN measurements text[] NOT NULL DEFAULT '{}',
    -- A revoked device may not connect or send: its broker login and HTTP tokens are gone.
    ADD COLUMN revoked_at timestamptz,
    -- Mosquitto 2's PBKDF2-SHA512 hash of the broker password ($7$...), never the password.
    ADD COLUMN broker_secret text CHECK (broker_secret LIKE '$7$%'),
    ADD COLUMN broker_secret_set_at timestamptz;
