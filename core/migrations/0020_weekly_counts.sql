-- Counts per patient and Norwegian week for the figures (quality/figures.py, core/weeks.py):
-- a whole week of a patient is one row here instead of one index entry per reading or
-- answer. `week` is the week's Monday in Europe/Oslo (core.clock.DISPLAY_TIMEZONE). Whoever
-- writes readings or answers counts them in the same statement, so each row costs ingest: the
-- week leads the key (the figures read a range of weeks, and a batch's rows sit together at
-- the end of it), there is no other index, and no foreign key, whose check would run once per
-- row written (erasure deletes the rows itself, care/rights.py).
CREATE TABLE reading_weeks (
    week date NOT NULL,
    patient_id uuid NOT NULL,
    code text NOT NULL,
    readings integer NOT NULL,
    PRIMARY KEY (week, patient_id, code)
);

-- `days`: the weekdays with an answer, bit 0 for Monday to bit 6 for Sunday.
CREATE TABLE answered_weeks (
    week date NOT NULL,
    patient_id uuid NOT NULL,
    kind text NOT NULL,
    days integer NOT NULL,
    PRIMARY KEY (week, patient_id, kind)
);

-- What is stored so far (an anonymised patient's readings belong to no patient).
INSERT INTO reading_weeks (patient_id, code, week, readings)
SELECT r.patient_id, r.code, date_trunc('week', r.measured_at AT TIME ZONE 'Europe/Oslo')::date,
       count(*)
  FROM readings r
 WHERE EXISTS (SELECT 1 FROM patients p WHERE p.id = r.patient_id)
 GROUP BY 1, 2, 3;

INSERT INTO answered_weeks (patient_id, kind, week, days)
SELECT patient_id, kind, date_trunc('week', answered_at AT TIME ZONE 'Europe/Oslo')::date,
       bit_or(1 << (extract(isodow FROM answered_at AT TIME ZONE 'Europe/Oslo')::int - 1))
  FROM questionnaire_responses
 GROUP BY 1, 2, 3;

-- Statistics now, so the figures' plans are right before autovacuum comes by.
ANALYZE reading_weeks;
ANALYZE answered_weeks;
