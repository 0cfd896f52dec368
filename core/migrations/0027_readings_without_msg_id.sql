-- Readings no longer carry the msg_id of the message they came in. De-duplication has been by
-- `ingest_messages` (migration 0015: the first message with an id wins, remembered as long as
-- a reading of it could still be accepted) and by the readings' own key (device, measurement,
-- measured time); nothing read the column. A random UUID on every row was the largest part of
-- a stored reading: 16 of about 26 bytes compressed on TimescaleDB, 16 of about 110 in the
-- table uncompressed (bench/storage.py).
ALTER TABLE readings DROP COLUMN msg_id;
