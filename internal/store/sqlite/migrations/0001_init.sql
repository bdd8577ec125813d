-- 0001: users, primary keys and data keys.
--
-- Tables are STRICT (types are enforced) and WITHOUT ROWID (rows live in the
-- primary-key b-tree, so a lookup by name is one b-tree descent and there is
-- no second index to keep in sync). Text compares with the BINARY collation:
-- names are case-sensitive, byte for byte. Times are unix seconds, UTC.

CREATE TABLE users (
	name       TEXT    NOT NULL PRIMARY KEY,
	token_hash TEXT    NOT NULL,
	created    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE primary_keys (
	owner        TEXT    NOT NULL REFERENCES users (name),
	name         TEXT    NOT NULL,
	-- Version 0 means "newest" in lookups, so stored versions start at 1.
	version      INTEGER NOT NULL CHECK (version > 0),
	root_version INTEGER NOT NULL,
	wrapped      BLOB    NOT NULL,
	created      INTEGER NOT NULL,
	PRIMARY KEY (owner, name, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE data_keys (
	owner           TEXT    NOT NULL,
	primary_name    TEXT    NOT NULL,
	name            TEXT    NOT NULL,
	primary_version INTEGER NOT NULL,
	wrapped         BLOB    NOT NULL,
	created         INTEGER NOT NULL,
	PRIMARY KEY (owner, primary_name, name)
) STRICT, WITHOUT ROWID;

-- A data key needs its primary key (any version; that implies its owner). A
-- foreign key cannot say this because (owner, name) is not unique in
-- primary_keys, so a trigger does. RAISE(ABORT) fails the statement with
-- SQLITE_CONSTRAINT_TRIGGER, which the adapter maps to kms.ErrNotFound.
-- Keeping the rule in the schema holds it for every writer of the file.
CREATE TRIGGER data_keys_need_primary
BEFORE INSERT ON data_keys
WHEN NOT EXISTS (
	SELECT 1 FROM primary_keys WHERE owner = NEW.owner AND name = NEW.primary_name
)
BEGIN
	SELECT RAISE(ABORT, 'primary key does not exist');
END;
