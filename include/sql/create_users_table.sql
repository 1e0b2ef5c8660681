-- The table store_user loads into. Runs at the start of every DAG run, so it must be idempotent.
-- Values are stored as the API sent them; dbt's staging layer does the cleaning.
-- There is deliberately no password column: passwords, salts and hashes are dropped at extract.
CREATE TABLE IF NOT EXISTS users (
    user_id       uuid        PRIMARY KEY,  -- the API's login.uuid
    firstname     text        NOT NULL,
    lastname      text        NOT NULL,
    email         text        NOT NULL,     -- not unique: the API repeats emails
    username      text        NOT NULL,     -- not unique either
    gender        text,
    city          text,
    country       text        NOT NULL,
    postcode      text,                     -- text: the API sends 32158 and "0150" alike
    nationality   text,                     -- the API's two-letter nat code
    registered_at timestamptz,
    loaded_at     timestamptz NOT NULL DEFAULT now()  -- when this row last changed
);
