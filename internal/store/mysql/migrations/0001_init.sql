-- 0001: users, primary keys and data keys.
--
-- Names are VARBINARY, so they compare byte for byte (case-sensitive)
-- whatever the server's or database's default collation. Every table has a
-- primary key (Galera and group replication need one) and uses InnoDB
-- (transactions, foreign keys, crash-safe redo log).
--
-- MySQL commits each DDL statement on its own, so a migration that stops
-- half-way is run again from the start: every statement here must be
-- idempotent (CREATE ... IF NOT EXISTS). Statements end with ';' at the end
-- of a line; lines starting with '--' are comments.

CREATE TABLE IF NOT EXISTS users (
    name       VARBINARY(128)  NOT NULL,
    token_hash VARBINARY(1024) NOT NULL,
    created    DATETIME(6)     NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS primary_keys (
    owner        VARBINARY(128)  NOT NULL,
    name         VARBINARY(128)  NOT NULL,
    version      INT             NOT NULL,
    root_version INT             NOT NULL,
    wrapped      VARBINARY(4096) NOT NULL,
    created      DATETIME(6)     NOT NULL,
    PRIMARY KEY (owner, name, version),
    CONSTRAINT primary_keys_owner_fk FOREIGN KEY (owner) REFERENCES users (name)
) ENGINE = InnoDB;

-- The owner of a data key is the owner of its primary key, which the insert
-- checks in the same statement (see CreateDataKey), so data_keys needs no
-- foreign key of its own.
CREATE TABLE IF NOT EXISTS data_keys (
    owner           VARBINARY(128)  NOT NULL,
    primary_name    VARBINARY(128)  NOT NULL,
    name            VARBINARY(128)  NOT NULL,
    primary_version INT             NOT NULL,
    wrapped         VARBINARY(4096) NOT NULL,
    created         DATETIME(6)     NOT NULL,
    PRIMARY KEY (owner, primary_name, name)
) ENGINE = InnoDB;
