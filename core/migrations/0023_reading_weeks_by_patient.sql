-- One patient's weekly counts by week: the patient page's daily rollup checks them on every
-- long range it draws (dashboard/data/trend_days.py), and erasure deletes them by patient.
-- The primary key leads with the week, for the figures' whole-week sums; without this index
-- the check read the whole table (52 ms for one patient's year among 5,000 patients).
-- Ingest's upserts change only `readings`, which no index holds, so they stay HOT updates:
-- the index costs ingest one entry per patient, measurement and week, when the week begins.
CREATE INDEX reading_weeks_by_patient ON reading_weeks (patient_id, week);
