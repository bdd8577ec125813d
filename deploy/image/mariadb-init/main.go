// Command mariadb-init is the entrypoint of the bundled MariaDB image: the
// image has no shell and no perl, so mariadb-install-db cannot run. On first
// start it creates the data directory by feeding the system-table scripts
// and the accounts to `mariadbd --bootstrap`, then it replaces itself with
// mariadbd.
//
// Environment (each NAME may instead be given as NAME_FILE, a file holding
// the value, e.g. a mounted Secret):
//
//	MARIADB_ROOT_PASSWORD  required, never empty; root may log in only
//	                       through the local socket
//	MARIADB_DATABASE       database to create (optional)
//	MARIADB_USER           account to create, from any host, with all
//	MARIADB_PASSWORD       privileges on MARIADB_DATABASE (optional)
//
// The accounts are set only when the data directory is created; changing
// the variables later changes nothing. Initialisation happens in a sibling
// directory that is renamed into place once complete, so a crash during it
// leaves no half-made data directory behind.
//
// Arguments after the flags are passed to mariadbd.
//
// Two other modes serve the chart: -healthcheck logs in as root over the
// socket and runs SELECT 1 (the probes: a bare TCP probe would fill the log
// with aborted connections), and -wait HOST:PORT returns once a TCP
// connection succeeds (kmsd's init container: a Service has no endpoint
// until MariaDB is ready, so this waits for readiness).
package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "mariadb-init:", err)
		os.Exit(1)
	}
}

// options are the flags of mariadb-init.
type options struct {
	datadir, mariadbd, share, socket string
	port                             int
}

func run(args []string, getenv func(string) string) error {
	var o options
	fs := flag.NewFlagSet("mariadb-init", flag.ContinueOnError)
	fs.StringVar(&o.datadir, "datadir", "/var/lib/mysql/data", "data directory; its parent must be writable")
	fs.StringVar(&o.mariadbd, "mariadbd", "/usr/sbin/mariadbd", "server binary")
	fs.StringVar(&o.share, "share", "/usr/share/mysql", "directory of the bootstrap SQL scripts, messages and charsets")
	fs.StringVar(&o.socket, "socket", "/run/mysqld/mysqld.sock", "Unix socket")
	fs.IntVar(&o.port, "port", 3306, "TCP port")
	health := fs.Bool("healthcheck", false, "check that the server answers SELECT 1 as root over the socket, then exit")
	wait := fs.String("wait", "", "wait until a TCP connection to this HOST:PORT succeeds, then exit")
	waitTimeout := fs.Duration("wait-timeout", 5*time.Minute, "give up waiting after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *wait != "" {
		return waitTCP(*wait, *waitTimeout)
	}
	acct, err := readAccounts(getenv)
	if err != nil {
		return err
	}
	if *health {
		return healthcheck(o.socket, acct.rootPassword)
	}
	if err := initialize(o, acct); err != nil {
		return err
	}
	argv := append([]string{o.mariadbd, "--no-defaults",
		"--datadir=" + o.datadir,
		"--lc-messages-dir=" + o.share,
		"--character-sets-dir=" + filepath.Join(o.share, "charsets"),
		"--socket=" + o.socket,
		fmt.Sprintf("--port=%d", o.port),
		"--bind-address=0.0.0.0",
		"--skip-name-resolve",
	}, fs.Args()...)
	fmt.Fprintln(os.Stderr, "mariadb-init: starting", strings.Join(argv, " "))
	return syscall.Exec(argv[0], argv, os.Environ())
}

// accounts are the credentials the data directory is created with.
type accounts struct {
	rootPassword, database, user, password string
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

func readAccounts(getenv func(string) string) (accounts, error) {
	var a accounts
	var errs []error
	get := func(name string) string {
		if f := getenv(name + "_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s_FILE: %w", name, err))
			}
			return strings.TrimRight(string(b), "\r\n")
		}
		return getenv(name)
	}
	a.rootPassword, a.database = get("MARIADB_ROOT_PASSWORD"), get("MARIADB_DATABASE")
	a.user, a.password = get("MARIADB_USER"), get("MARIADB_PASSWORD")
	if a.rootPassword == "" {
		errs = append(errs, errors.New("MARIADB_ROOT_PASSWORD is empty: an empty root password is refused"))
	}
	if a.database != "" && !nameRE.MatchString(a.database) {
		errs = append(errs, errors.New("MARIADB_DATABASE: use 1-32 letters, digits or _"))
	}
	if a.user != "" && (!nameRE.MatchString(a.user) || a.user == "root") {
		errs = append(errs, errors.New("MARIADB_USER: use 1-32 letters, digits or _, not root"))
	}
	if a.user != "" && (a.password == "" || a.database == "") {
		errs = append(errs, errors.New("MARIADB_USER needs MARIADB_PASSWORD and MARIADB_DATABASE"))
	}
	return a, errors.Join(errs...)
}

// initialize creates o.datadir unless it already holds a database.
func initialize(o options, a accounts) error {
	if _, err := os.Stat(filepath.Join(o.datadir, "mysql")); err == nil {
		fmt.Fprintln(os.Stderr, "mariadb-init: using the existing data directory", o.datadir)
		return nil
	}
	if ents, err := os.ReadDir(o.datadir); err == nil {
		if len(ents) > 0 {
			return fmt.Errorf("%s is not empty but holds no database (no mysql/ directory): refusing to touch it", o.datadir)
		}
		if err := os.Remove(o.datadir); err != nil {
			return err
		}
	}
	tmp := o.datadir + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove an interrupted initialisation: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create the data directory: %w", err)
	}
	script, err := bootstrapSQL(o.share, a)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "mariadb-init: creating the data directory", o.datadir)
	cmd := exec.Command(o.mariadbd, "--no-defaults", "--bootstrap", "--datadir="+tmp,
		"--lc-messages-dir="+o.share, "--character-sets-dir="+filepath.Join(o.share, "charsets"),
		"--log-warnings=0", "--enforce-storage-engine=", "--max_allowed_packet=8M", "--net_buffer_length=16K")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(script), os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mariadbd --bootstrap: %w", err)
	}
	return os.Rename(tmp, o.datadir)
}

// bootstrapSQL is what mariadb-install-db feeds mariadbd (system tables,
// their data, the sys schema; no test database, no anonymous users), then
// the accounts.
func bootstrapSQL(share string, a accounts) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("CREATE DATABASE IF NOT EXISTS mysql;\nUSE mysql;\nSET @auth_root_socket=NULL;\n")
	for _, f := range []string{"mysql_system_tables.sql", "mysql_performance_tables.sql",
		"mysql_system_tables_data.sql", "maria_add_gis_sp_bootstrap.sql", "mysql_sys_schema.sql"} {
		s, err := os.ReadFile(filepath.Join(share, f))
		if err != nil {
			return nil, fmt.Errorf("bootstrap script: %w", err)
		}
		b.Write(s)
		b.WriteString("\n")
	}
	// Root keeps only root@localhost (the socket), with a password; the
	// root@127.0.0.1, root@::1 and root@<hostname> rows go, as do
	// anonymous accounts.
	fmt.Fprintf(&b, "FLUSH PRIVILEGES;\n"+
		"DELETE FROM mysql.global_priv WHERE User='' OR (User='root' AND Host<>'localhost');\n"+
		"DELETE FROM mysql.proxies_priv WHERE User='root' AND Host<>'localhost';\n"+
		"FLUSH PRIVILEGES;\n"+
		"ALTER USER 'root'@'localhost' IDENTIFIED BY %s;\n", quote(a.rootPassword))
	if a.database != "" {
		fmt.Fprintf(&b, "CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n", a.database)
	}
	if a.user != "" {
		fmt.Fprintf(&b, "CREATE USER '%s'@'%%' IDENTIFIED BY %s;\nGRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%';\n",
			a.user, quote(a.password), a.database, a.user)
	}
	return b.Bytes(), nil
}

// quote returns s as an SQL string literal (NO_BACKSLASH_ESCAPES off, as
// in bootstrap mode).
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`).Replace(s) + "'"
}

// healthcheck runs SELECT 1 as root over the socket, within 5 seconds.
func healthcheck(socket, password string) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = "root", password, "unix", socket
	cfg.Timeout = 5 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	return nil
}

// waitTCP dials addr every second until it connects or timeout passes.
func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
			fmt.Fprintln(os.Stderr, "mariadb-init:", addr, "accepts connections")
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still unreachable after %s: %w", addr, timeout, err)
		}
		fmt.Fprintln(os.Stderr, "mariadb-init: waiting for", addr, "-", err)
		time.Sleep(time.Second)
	}
}
