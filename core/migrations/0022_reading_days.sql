-- Each patient's readings summed up per measurement and Oslo day, for the patient page's long
-- ranges (dashboard/data/trend_days.py): a year is a few hundred rows instead of thousands of
-- readings. Ingest never writes here. The page rolls up whole Norwegian weeks before the
-- current one when it first reads them and keeps them; `reading_day_weeks` holds how many
-- readings of the week a rollup saw, and a week whose count at ingest (reading_weeks) has
-- changed since (a late reading, retention) is rolled up again on the next read. The current
-- week is always summed from the raw readings. The foreign key costs nothing on ingest and
-- makes erasure remove the rows with the patient.
CREATE TABLE reading_days (
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    code text NOT NULL,
    day date NOT NULL,
    readings integer NOT NULL,
    low double precision NOT NULL,
    median double precision NOT NULL,
    high double precision NOT NULL,
    total double precision NOT NULL,
    squares double precision NOT NULL,
    PRIMARY KEY (patient_id, code, day)
);

CREATE TABLE reading_day_weeks (
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    code text NOT NULL,
    week date NOT NULL,
    readings integer NOT NULL,
    PRIMARY KEY (patient_id, code, week)
);
