-- The messages ingest has taken, by the sender's msg_id (written by ingest/store.py). A msg_id
-- names one message: a second message from the device with the same id and other content is
-- a conflicting duplicate and goes to quarantine (the first wins); the same content again is
-- a redelivery. `digest` combines the hashes of the message's readings. A row is kept only while a
-- reading of that message could still be accepted (HEIMVAKT_INGEST_MAX_AGE_DAYS plus the
-- allowed clock skew): the sweep deletes older ones, by the BRIN index on received_at, which
-- costs next to nothing to keep since rows arrive in time order.
CREATE TABLE ingest_messages (
    device_id text NOT NULL,
    msg_id uuid NOT NULL,
    digest bigint NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (device_id, msg_id)
);
CREATE INDEX ingest_messages_received ON ingest_messages USING brin (received_at);
