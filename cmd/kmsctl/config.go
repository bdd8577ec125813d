package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/ppmlkms/kms/client"
)

// defaultPort is BigDL's KMS port, added to a server given without one.
const defaultPort = "9876"

// maxTokenFile bounds what is read from a token file or stdin.
const maxTokenFile = 64 << 10

// cmdOpts holds every flag of every command; each command registers the
// ones it uses.
type cmdOpts struct {
	// Connection (flags of commands that talk to kmsd).
	configPath string
	server     string
	user       string
	tokenFile  string
	cacert     string
	insecure   bool
	timeout    time.Duration

	// Key and file commands.
	primaryKey    string
	dataKey       string
	createDataKey bool
	keyFile       string
	format        string
	output        string
	force         bool

	// The secrets commands.
	secrets secretsOpts
	// The native API, admin and sys commands.
	native nativeOpts
	// attest release.
	attest attestOpts

	set        map[string]bool // flags given on the command line
	stdinTaken string          // what already reads stdin, to refuse a second reader
}

func newCmdOpts() *cmdOpts {
	return &cmdOpts{timeout: 30 * time.Second, set: map[string]bool{}}
}

// registerConnection adds the connection flags to fs. The current values
// are the defaults, so registering on a second FlagSet keeps what the
// first one parsed.
func (o *cmdOpts) registerConnection(fs *flag.FlagSet) {
	fs.StringVar(&o.configPath, "config", o.configPath, "config `file` (default ~/.config/kmsctl/config.json)")
	fs.StringVar(&o.server, "server", o.server, "kmsd `URL` or host[:port] (env KMS_SERVER; default https://localhost:9876)")
	fs.StringVar(&o.user, "user", o.user, "user `name` (env KMS_USER)")
	fs.StringVar(&o.tokenFile, "token-file", o.tokenFile, "read the token from `file`, '-' for stdin (env KMS_TOKEN_FILE)")
	fs.StringVar(&o.cacert, "cacert", o.cacert, "trust the PEM certificate(s) in `file` (env KMS_CACERT)")
	fs.BoolVar(&o.insecure, "insecure", o.insecure, "do not verify the server's certificate: development only (env KMS_INSECURE)")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "time limit of each request to kmsd")
}

func (o *cmdOpts) markSet(fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
}

// fileConfig is the config file: JSON with these keys, unknown keys are an
// error. Relative paths are relative to the file's directory.
type fileConfig struct {
	Server    string `json:"server"`
	User      string `json:"user"`
	Token     string `json:"token"`
	TokenFile string `json:"token-file"`
	CACert    string `json:"cacert"`
	Insecure  bool   `json:"insecure"`
	// Admin and AdminTokenFile are the admin credential of the native
	// API's admin operations. There is no inline admin token.
	Admin          string `json:"admin"`
	AdminTokenFile string `json:"admin-token-file"`
}

// settings is the resolved connection configuration.
type settings struct {
	server   string
	user     string
	cacert   string
	insecure bool
	// token sources, strongest first; resolved only when a command needs it.
	tokenFile    string // flag, then KMS_TOKEN_FILE
	envToken     string
	configToken  string
	configTokenF string
	// The admin credential (see adminToken), resolved like the user's.
	admin             string
	adminTokenFile    string // --admin-token-file, then KMS_ADMIN_TOKEN_FILE
	envAdminToken     string
	configAdminTokenF string
}

// resolve merges defaults < config file < environment < flags.
func (o *cmdOpts) resolve(c *cli) (*settings, error) {
	s := &settings{}
	fc, dir, err := o.loadConfig(c)
	if err != nil {
		return nil, err
	}
	if fc != nil {
		s.server, s.user, s.insecure = fc.Server, fc.User, fc.Insecure
		s.cacert = relTo(dir, fc.CACert)
		s.configToken, s.configTokenF = fc.Token, relTo(dir, fc.TokenFile)
		s.admin, s.configAdminTokenF = fc.Admin, relTo(dir, fc.AdminTokenFile)
	}
	env := func(name string, dst *string) {
		if v := c.getenv(name); v != "" {
			*dst = v
		}
	}
	env("KMS_SERVER", &s.server)
	env("KMS_USER", &s.user)
	env("KMS_CACERT", &s.cacert)
	env("KMS_TOKEN_FILE", &s.tokenFile)
	s.envToken = c.getenv("KMS_TOKEN")
	env("KMS_ADMIN", &s.admin)
	env("KMS_ADMIN_TOKEN_FILE", &s.adminTokenFile)
	s.envAdminToken = c.getenv("KMS_ADMIN_TOKEN")
	if v := c.getenv("KMS_INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, usageErrorf("KMS_INSECURE=%q: want true or false", v)
		}
		s.insecure = b
	}
	flagStr := func(name, v string, dst *string) {
		if o.set[name] {
			*dst = v
		}
	}
	flagStr("server", o.server, &s.server)
	flagStr("user", o.user, &s.user)
	flagStr("cacert", o.cacert, &s.cacert)
	flagStr("token-file", o.tokenFile, &s.tokenFile)
	flagStr("admin", o.native.admin, &s.admin)
	flagStr("admin-token-file", o.native.adminTokenFile, &s.adminTokenFile)
	if o.set["insecure"] {
		s.insecure = o.insecure
	}
	if s.server == "" {
		s.server = "https://localhost:" + defaultPort
	}
	return s, nil
}

func relTo(dir, path string) string {
	if path == "" || filepath.IsAbs(path) || dir == "" {
		return path
	}
	return filepath.Join(dir, path)
}

// loadConfig reads the config file named by --config, or the default one
// if it exists. It warns when a file holding a token is readable by others.
func (o *cmdOpts) loadConfig(c *cli) (*fileConfig, string, error) {
	path, explicit := o.configPath, o.configPath != ""
	if !explicit {
		path = defaultConfigPath(c.getenv)
		if path == "" {
			return nil, "", nil
		}
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("config file: %w", err)
	}
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return nil, "", usageErrorf("config file %s: %v", path, err)
	}
	if fc.Token != "" {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(c.stderr, "kmsctl: warning: %s holds a token and is readable by others (chmod 600 it)\n", path)
		}
	}
	return &fc, filepath.Dir(path), nil
}

// defaultConfigPath is $XDG_CONFIG_HOME/kmsctl/config.json, or
// $HOME/.config/kmsctl/config.json.
func defaultConfigPath(getenv func(string) string) string {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "kmsctl", "config.json")
}

// serverURL turns "host", "host:port" or a URL into a base URL. A bare host
// gets https and BigDL's port 9876; a URL keeps its own port.
func serverURL(s string) string {
	if strings.Contains(s, "://") {
		return s
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		s = net.JoinHostPort(strings.Trim(s, "[]"), defaultPort)
	}
	return "https://" + s
}

// client returns a client for the resolved settings, with extra options
// such as a native API credential.
func (s *settings) client(c *cli, extra ...client.Option) (*client.Client, error) {
	opts := append([]client.Option{client.WithUserAgent("kmsctl/" + versionString())}, extra...)
	switch {
	case s.insecure:
		fmt.Fprintln(c.stderr, "kmsctl: warning: TLS certificate verification is off (--insecure); tokens and keys can be intercepted")
		opts = append(opts, client.WithInsecureSkipVerify())
	case s.cacert != "":
		opts = append(opts, client.WithCAFile(s.cacert))
	}
	cl, err := client.New(serverURL(s.server), opts...)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return cl, nil
}

// needUser returns the user name or a usage error.
func (s *settings) needUser() (string, error) {
	if s.user == "" {
		return "", usageErrorf("no user: use --user, KMS_USER or the config file")
	}
	return s.user, nil
}

// token returns the token from the strongest source that has one:
// --token-file (or KMS_TOKEN_FILE), KMS_TOKEN, the config file's token or
// token-file, then a prompt without echo if stdin is a terminal. With
// confirm, the prompt asks twice (for a new user's token).
func (o *cmdOpts) token(c *cli, s *settings, prompt string, confirm bool) (string, error) {
	switch {
	case s.tokenFile != "":
		return o.readTokenFile(c, s.tokenFile)
	case s.envToken != "":
		return s.envToken, nil
	case s.configToken != "":
		return s.configToken, nil
	case s.configTokenF != "":
		return o.readTokenFile(c, s.configTokenF)
	case c.stdinTerminal >= 0 && o.stdinTaken == "":
		return c.promptToken(prompt, confirm)
	}
	return "", usageErrorf("no token: use --token-file FILE, --token-file - (stdin), KMS_TOKEN, the config file, or run in a terminal to be prompted")
}

func (o *cmdOpts) readTokenFile(c *cli, path string) (string, error) {
	var r io.Reader
	if path == "-" {
		if err := o.takeStdin("--token-file -"); err != nil {
			return "", err
		}
		r = c.stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if len(b) > maxTokenFile {
		return "", usageErrorf("token file %s is larger than %d bytes", path, maxTokenFile)
	}
	tok := strings.TrimRight(string(b), "\r\n")
	clear(b)
	if tok == "" {
		return "", usageErrorf("token file %s is empty", path)
	}
	if strings.ContainsAny(tok, "\r\n") {
		return "", usageErrorf("token file %s has more than one line", path)
	}
	return tok, nil
}

// takeStdin claims standard input for what, or reports who has it.
func (o *cmdOpts) takeStdin(what string) error {
	if o.stdinTaken != "" {
		return usageErrorf("%s and %s cannot both read standard input", o.stdinTaken, what)
	}
	o.stdinTaken = what
	return nil
}

// testOnlyReadPassword replaces term.ReadPassword in tests.
var testOnlyReadPassword = term.ReadPassword

func (c *cli) promptToken(prompt string, confirm bool) (string, error) {
	read := func(p string) (string, error) {
		fmt.Fprint(c.stderr, p)
		b, err := testOnlyReadPassword(c.stdinTerminal)
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", fmt.Errorf("read token: %w", err)
		}
		defer clear(b)
		return string(b), nil
	}
	tok, err := read(prompt + ": ")
	if err != nil {
		return "", err
	}
	if tok == "" {
		return "", usageErrorf("empty token")
	}
	if confirm {
		again, err := read("Repeat the token: ")
		if err != nil {
			return "", err
		}
		if again != tok {
			return "", usageErrorf("the tokens do not match")
		}
	}
	return tok, nil
}
