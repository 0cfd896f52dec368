-- Which transaction last changed each patient's readings (written by ingest/ and care/ through
-- core/readings.py). A worker that keeps a patient's recent readings in memory for the rule
-- engine (alerts/state.py) trusts its copy only while this still names the transaction that
-- last updated the copy: any other writer, or a rolled-back one, makes it reload.
CREATE TABLE reading_revisions (
    patient_id uuid PRIMARY KEY REFERENCES patients ON DELETE CASCADE,
    revision bigint NOT NULL
);
