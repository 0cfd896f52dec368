-- heimvakt: requires timescaledb
-- Readings take less room on TimescaleDB (bench/storage.py measures them):
-- - The index on measured_at alone that create_hypertable added (migration 0005) goes: every
--   query about readings names the patient or the device, and retention drops whole chunks.
--   It was about a third of the uncompressed indexes.
-- - Compressed batches keep only the measured time's range as their sparse index. The bloom
--   filter TimescaleDB derived from the primary key served look-ups of one device's reading in
--   a compressed chunk, which ingest never makes (readings older than the maximum age, 30
--   days, are refused before compression reaches them); it took about a byte per reading.
--   Chunks compressed before keep their settings until recompressed.
DROP INDEX IF EXISTS readings_measured_at_idx;
ALTER TABLE readings SET (timescaledb.sparse_index = 'minmax(measured_at)');
