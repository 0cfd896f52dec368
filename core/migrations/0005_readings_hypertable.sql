-- heimvakt: requires timescaledb
-- Readings become a hypertable (weekly chunks) compressed per patient and device after 30 days
-- (every column of the primary key must be a segmentby or orderby column).
-- The queries stay the same on plain PostgreSQL.

SELECT create_hypertable('readings', 'measured_at',
    chunk_time_interval => INTERVAL '7 days', migrate_data => TRUE, if_not_exists => TRUE);

ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'patient_id, device_id',
    timescaledb.compress_orderby = 'code, measured_at DESC'
);

SELECT add_compression_policy('readings', INTERVAL '30 days', if_not_exists => TRUE);
