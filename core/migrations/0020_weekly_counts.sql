-- Counts per patient and Norwegian week for the figures (quality/figures.py, core/weeks.py):
-- a whole week of a patient is one row here instead of one index entry per reading or
-- answer. `week` is the week's Monday in Europe/Oslo (core.clock.DISPLAY_TIMEZONE). Whoever
-- writes readings or answers counts them in the same statement; erasure cascades.
CREATE TABLE reading_weeks (
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    code text NOT NULL,
    week date NOT NULL,
    readings integer NOT NULL,
    PRIMARY KEY (patient_id, code, week)
);
CREATE INDEX reading_weeks_week ON reading_weeks (week);

-- `days`: the weekdays with an answer, bit 0 for Monday to bit 6 for Sunday.
CREATE TABLE answered_weeks (
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    kind text NOT NULL,
    week date NOT NULL,
    days integer NOT NULL,
    PRIMARY KEY (patient_id, kind, week)
);
CREATE INDEX answered_weeks_week ON answered_weeks (week);

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
