-- 0002: key lifecycle. Users can be disabled; docs hold small versioned
-- documents (key metadata, seal configuration, attestation policies,
-- single-use nonces) that the domain reads and writes by compare-and-swap
-- on revision.

ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));

-- A rowid table, unlike the others: a value may be up to 1 MiB, and a
-- WITHOUT ROWID table keeps whole rows in its b-tree, where big rows are
-- slow. The primary key is a separate unique index on (kind, id), which
-- ListDocs scans in order. Sizes are checked in bytes (the adapter checks
-- them first; this holds them for every writer of the file).
CREATE TABLE docs (
	kind     TEXT    NOT NULL CHECK (length(CAST(kind AS BLOB)) <= 128),
	id       TEXT    NOT NULL CHECK (length(CAST(id AS BLOB)) <= 128),
	value    BLOB    NOT NULL CHECK (length(value) <= 1048576),
	revision INTEGER NOT NULL CHECK (revision > 0),
	updated  INTEGER NOT NULL,
	PRIMARY KEY (kind, id)
) STRICT;
