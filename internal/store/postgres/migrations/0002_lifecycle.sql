-- 0002: key lifecycle. Users can be disabled; docs hold small versioned
-- documents (key metadata, seal configuration, attestation policies,
-- single-use nonces) that the domain reads and writes by compare-and-swap
-- on revision.
--
-- ADD COLUMN with a constant default changes only the catalog (PostgreSQL
-- 11+): no table rewrite, and replicas of schema 1 keep writing users, which
-- get the default.

ALTER TABLE users ADD COLUMN disabled boolean NOT NULL DEFAULT false;

-- Kind and id use the "C" collation like the names: byte order, and a
-- prefix LIKE can use the primary key. The adapter checks the limits (128
-- bytes, 1 MiB values) before it writes.
CREATE TABLE docs (
    kind     varchar(128) COLLATE "C" NOT NULL,
    id       varchar(128) COLLATE "C" NOT NULL,
    value    bytea                    NOT NULL,
    revision bigint                   NOT NULL,
    updated  timestamptz              NOT NULL,
    PRIMARY KEY (kind, id)
);
