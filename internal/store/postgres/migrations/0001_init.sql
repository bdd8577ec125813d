-- 0001: users, primary keys and data keys.
--
-- A migration runs in one transaction under a transaction-scoped advisory
-- lock (see migrate.go), so it needs no IF NOT EXISTS: a table of that name
-- that is already there is an error, not something to reuse silently.
--
-- Names use the "C" collation: comparison and ordering byte for byte
-- (case-sensitive) whatever the database's locale.

CREATE TABLE users (
    name       varchar(128) COLLATE "C" NOT NULL PRIMARY KEY,
    token_hash text                     NOT NULL,
    created    timestamptz              NOT NULL
);

CREATE TABLE primary_keys (
    owner        varchar(128) COLLATE "C" NOT NULL REFERENCES users (name),
    name         varchar(128) COLLATE "C" NOT NULL,
    version      integer                  NOT NULL,
    root_version integer                  NOT NULL,
    wrapped      bytea                    NOT NULL,
    created      timestamptz              NOT NULL,
    PRIMARY KEY (owner, name, version)
);

-- The owner of a data key is the owner of its primary key, which the insert
-- checks in the same statement (see CreateDataKey), so data_keys needs no
-- foreign key of its own (each one would lock and write the parent row).
CREATE TABLE data_keys (
    owner           varchar(128) COLLATE "C" NOT NULL,
    primary_name    varchar(128) COLLATE "C" NOT NULL,
    name            varchar(128) COLLATE "C" NOT NULL,
    primary_version integer                  NOT NULL,
    wrapped         bytea                    NOT NULL,
    created         timestamptz              NOT NULL,
    PRIMARY KEY (owner, primary_name, name)
);
