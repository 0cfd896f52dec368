-- Reminders to the patient before a missing measurement becomes the nurse's alert (issue 20).

-- Where the patient wants their reminders: an e-mail address, or an Apprise URL (SMS, push).
-- No row is "no reminders". Personal data the patient chooses (alerts/reminder_routes.py);
-- exported with the record and erased with it.
CREATE TABLE reminder_channels (
    patient_id uuid PRIMARY KEY REFERENCES patients ON DELETE CASCADE,
    channel text NOT NULL CHECK (channel IN ('email', 'apprise')),
    address text NOT NULL CHECK (length(address) BETWEEN 1 AND 2000),
    updated_at timestamptz NOT NULL
);

-- One reminder per missed scheduled measurement (alerts/reminders.py): the measurement was
-- last taken (or the plan began) at `since`, was due at `due_at` (since + every_hours +
-- grace_hours), is reminded of at `remind_at` (due_at moved into the plan's allowed hours of
-- the day) and becomes the nurse's adherence alert at `alert_at` unless a reading closes the
-- reminder first. `recipients`: how many outbox rows it was sent as.
CREATE TABLE reminders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    code text NOT NULL,
    since timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    remind_at timestamptz NOT NULL,
    alert_at timestamptz NOT NULL,
    sent_at timestamptz,
    recipients integer CHECK (recipients >= 0),
    closed_at timestamptz,
    UNIQUE (patient_id, code, since),
    CHECK (due_at <= remind_at AND remind_at <= alert_at),
    CHECK ((sent_at IS NULL) = (recipients IS NULL))
);
-- The sweep's two looks: reminders still waiting to be sent or closed, and the figures' sent ones.
CREATE INDEX reminders_open ON reminders (remind_at) WHERE closed_at IS NULL;
CREATE INDEX reminders_sent ON reminders (sent_at) WHERE sent_at IS NOT NULL;

-- A reminder's outbox rows: the same outbox and dispatcher as the staff's notifications.
ALTER TABLE notifications
    ADD COLUMN reminder_id bigint REFERENCES reminders ON DELETE CASCADE,
    ADD CONSTRAINT notification_about_one_thing CHECK (alert_id IS NULL OR reminder_id IS NULL);
CREATE INDEX notifications_reminder ON notifications (reminder_id) WHERE reminder_id IS NOT NULL;
