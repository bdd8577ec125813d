package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestReadAccounts(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)
	for name, tc := range map[string]struct {
		env     map[string]string
		wantErr string
	}{
		"ok":                {env: map[string]string{"MARIADB_ROOT_PASSWORD": "r", "MARIADB_DATABASE": "kms", "MARIADB_USER": "kms", "MARIADB_PASSWORD": "p"}},
		"ok/files":          {env: map[string]string{"MARIADB_ROOT_PASSWORD_FILE": pwFile}},
		"error/empty root":  {env: map[string]string{}, wantErr: "empty root password"},
		"error/no file":     {env: map[string]string{"MARIADB_ROOT_PASSWORD_FILE": "/nonexistent"}, wantErr: "MARIADB_ROOT_PASSWORD_FILE"},
		"error/user root":   {env: map[string]string{"MARIADB_ROOT_PASSWORD": "r", "MARIADB_USER": "root", "MARIADB_PASSWORD": "p", "MARIADB_DATABASE": "d"}, wantErr: "not root"},
		"error/bad db name": {env: map[string]string{"MARIADB_ROOT_PASSWORD": "r", "MARIADB_DATABASE": "a`b"}, wantErr: "MARIADB_DATABASE"},
		"error/user no pw":  {env: map[string]string{"MARIADB_ROOT_PASSWORD": "r", "MARIADB_USER": "u", "MARIADB_DATABASE": "d"}, wantErr: "needs MARIADB_PASSWORD"},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := readAccounts(env(tc.env))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if name == "ok/files" && a.rootPassword != "from-file" {
					t.Errorf("root password %q", a.rootPassword)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":  "'plain'",
		`a'b`:    `'a\'b'`,
		`a\b`:    `'a\\b'`,
		"a\x00b": `'a\0b'`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestBootstrapSQL(t *testing.T) {
	share := t.TempDir()
	for _, f := range []string{"mysql_system_tables.sql", "mysql_performance_tables.sql",
		"mysql_system_tables_data.sql", "maria_add_gis_sp_bootstrap.sql", "mysql_sys_schema.sql"} {
		os.WriteFile(filepath.Join(share, f), []byte("-- "+f), 0o644)
	}
	sql, err := bootstrapSQL(share, accounts{rootPassword: "r'pw", database: "kms", user: "kms", password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(sql)
	for _, want := range []string{"-- mysql_sys_schema.sql", `ALTER USER 'root'@'localhost' IDENTIFIED BY 'r\'pw';`,
		"CREATE DATABASE IF NOT EXISTS `kms`", "CREATE USER 'kms'@'%' IDENTIFIED BY 'p';", "GRANT ALL PRIVILEGES ON `kms`.* TO 'kms'@'%';",
		"User='root' AND Host<>'localhost'"} {
		if !strings.Contains(s, want) {
			t.Errorf("bootstrap SQL lacks %q", want)
		}
	}
	os.Remove(filepath.Join(share, "mysql_sys_schema.sql"))
	if _, err := bootstrapSQL(share, accounts{rootPassword: "r"}); err == nil {
		t.Error("missing script: no error")
	}
}

// TestInitialize runs the data directory creation with a fake mariadbd
// that records its stdin, and checks the rename and the refusals.
func TestInitialize(t *testing.T) {
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	os.Mkdir(share, 0o755)
	for _, f := range []string{"mysql_system_tables.sql", "mysql_performance_tables.sql",
		"mysql_system_tables_data.sql", "maria_add_gis_sp_bootstrap.sql", "mysql_sys_schema.sql"} {
		os.WriteFile(filepath.Join(share, f), nil, 0o644)
	}
	fake := filepath.Join(dir, "mariadbd")
	// the fake server: --datadir=DIR is its third argument
	os.WriteFile(fake, []byte("#!/bin/sh\nd=${3#--datadir=}\nmkdir \"$d/mysql\" && cat > \"$d/bootstrap.sql\"\n"), 0o755)
	o := options{datadir: filepath.Join(dir, "data"), mariadbd: fake, share: share}
	a := accounts{rootPassword: "r"}
	if err := initialize(o, a); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.datadir, "mysql")); err != nil {
		t.Fatalf("data directory not created: %v", err)
	}
	if _, err := os.Stat(o.datadir + ".init"); !os.IsNotExist(err) {
		t.Errorf("temporary directory left: %v", err)
	}
	// second start: the existing database is used as is
	os.WriteFile(fake, []byte("#!/bin/sh\nexit 1\n"), 0o755)
	if err := initialize(o, a); err != nil {
		t.Errorf("existing data directory: %v", err)
	}
	// a non-empty directory without a database is refused
	o.datadir = filepath.Join(dir, "other")
	os.MkdirAll(filepath.Join(o.datadir, "lost+found"), 0o755)
	if err := initialize(o, a); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("non-empty directory: %v", err)
	}
	// a failed bootstrap leaves no data directory behind
	o.datadir = filepath.Join(dir, "failed")
	if err := initialize(o, a); err == nil {
		t.Error("failed bootstrap: no error")
	}
	if _, err := os.Stat(o.datadir); !os.IsNotExist(err) {
		t.Errorf("failed bootstrap left %s", o.datadir)
	}
}
