-- 0002: key lifecycle. Users can be disabled; docs hold small versioned
-- documents (key metadata, seal configuration, attestation policies,
-- single-use nonces) that the domain reads and writes by compare-and-swap
-- on revision.
--
-- MySQL has no ADD COLUMN IF NOT EXISTS (MariaDB has): the migration runner
-- counts error 1060 (duplicate column) as "already applied", so that a
-- migration that stopped half-way, or one that another replica is running
-- at the same time, can run again. ADD COLUMN with a default is an instant
-- change (MySQL 8.0.12+, MariaDB 10.3+): no table copy, and replicas of
-- schema 1 keep writing users, which get the default.

ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;

-- Kind and id are VARBINARY like the names: byte for byte. The adapter
-- checks the limits (128 bytes, 1 MiB values) before it writes.
CREATE TABLE IF NOT EXISTS docs (
    kind     VARBINARY(128) NOT NULL,
    id       VARBINARY(128) NOT NULL,
    value    LONGBLOB       NOT NULL,
    revision BIGINT         NOT NULL,
    updated  DATETIME(6)    NOT NULL,
    PRIMARY KEY (kind, id)
) ENGINE = InnoDB;
