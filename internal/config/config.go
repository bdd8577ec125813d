// Package config parses and validates kmsd's configuration.
//
// Sources, weakest first: defaults, a JSON file (-config or KMS_CONFIG),
// environment variables (KMS_ plus the upper-case flag name with '-' as
// '_', e.g. KMS_DATA_DIR) and command-line flags. Unknown keys in the file
// are errors. Secrets are never configuration values: the config names the
// file or environment variable that holds them.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is kmsd's configuration. JSON names are the flag names.
type Config struct {
	Addr    string `json:"addr"`
	DataDir string `json:"data-dir"`
	// Store selects the store: empty for SQLite at <data-dir>/kms.db,
	// "sqlite:<path>", or a mysql:// or postgres:// URL.
	Store string `json:"store"`
	// Pool limits of a MySQL or PostgreSQL store (zero: the adapter's default).
	StoreMaxConns        int      `json:"store-max-conns"`
	StoreConnMaxLifetime Duration `json:"store-conn-max-lifetime"`
	StoreQueryTimeout    Duration `json:"store-query-timeout"`

	TLSCert           string `json:"tls-cert"`
	TLSKey            string `json:"tls-key"`
	TLSPKCS12         string `json:"tls-pkcs12"`
	TLSPKCS12Password string `json:"tls-pkcs12-password-file"`
	TLSPKCS12PassEnv  string `json:"tls-pkcs12-password-env"`
	// The PPML ssl-password Secret: output.bin holds the PKCS#12 password
	// encrypted (RSA PKCS#1 v1.5) to the private key in key.txt.
	TLSPKCS12PassRSAKey    string `json:"tls-pkcs12-password-rsa-key"`
	TLSPKCS12PassEncrypted string `json:"tls-pkcs12-password-encrypted"`

	// Seal is "auto" (the root key comes from root-key-file/-env or the
	// generated key file) or "shamir" (start sealed; unseal with shares).
	Seal        string `json:"seal"`
	RootKeyFile string `json:"root-key-file"`
	// Optional mutual TLS: client certificates signed by TLSClientCA and
	// named in ClientIdentities authenticate as users or admins.
	TLSClientCA      string `json:"tls-client-ca"`
	ClientIdentities string `json:"tls-client-identities"`
	RootKeyEnv       string `json:"root-key-env"`

	// AdminTokens names a file of admin identities, one per line:
	// "<name> <argon2id hash>" (kmsctl admin hash-token makes the hash).
	AdminTokens string `json:"admin-tokens"`
	// AuditLog is the audit stream: a file path, "-" for stdout, "off".
	AuditLog        string   `json:"audit-log"`
	AuditFailClosed bool     `json:"audit-fail-closed"`
	Maintenance     Duration `json:"maintenance-interval"`

	LogFormat string `json:"log-format"`
	LogLevel  string `json:"log-level"`
	AccessLog bool   `json:"access-log"`
	Dev       bool   `json:"dev"`

	// Attestation (docs/attestation.md): enabled by a collateral source or
	// the mock TEE. AttestAddr adds a listener serving BigDL's attestation
	// service at its root (BigDL's port 9875); the API is always also under
	// /attestation/ and /v1/attest/ on Addr.
	AttestCollateralDir string `json:"attest-collateral-dir"`
	AttestPCCSURL       string `json:"attest-pccs-url"`
	AttestAllowMockTEE  bool   `json:"attest-allow-mock-tee"`
	AttestAudience      string `json:"attest-audience"`
	AttestAddr          string `json:"attest-addr"`

	ReadHeaderTimeout Duration `json:"read-header-timeout"`
	ReadTimeout       Duration `json:"read-timeout"`
	WriteTimeout      Duration `json:"write-timeout"`
	IdleTimeout       Duration `json:"idle-timeout"`
	ShutdownTimeout   Duration `json:"shutdown-timeout"`
	MaxHeaderBytes    int      `json:"max-header-bytes"`
}

// Default returns the defaults: HTTPS on :9876, state under ./kms-data.
func Default() Config {
	return Config{
		Addr:              ":9876",
		DataDir:           "kms-data",
		AuditLog:          "-",
		Seal:              "auto",
		Maintenance:       Duration(time.Minute),
		LogFormat:         "text",
		LogLevel:          "info",
		AccessLog:         false,
		ReadHeaderTimeout: Duration(10 * time.Second),
		ReadTimeout:       Duration(30 * time.Second),
		WriteTimeout:      Duration(30 * time.Second),
		IdleTimeout:       Duration(120 * time.Second),
		ShutdownTimeout:   Duration(20 * time.Second),
		MaxHeaderBytes:    16 << 10,
	}
}

type field struct {
	name, usage string
	value       func(c *Config) flag.Value
}

func fields() []field {
	s := func(f func(*Config) *string) func(*Config) flag.Value {
		return func(c *Config) flag.Value { return (*stringValue)(f(c)) }
	}
	b := func(f func(*Config) *bool) func(*Config) flag.Value {
		return func(c *Config) flag.Value { return (*boolValue)(f(c)) }
	}
	d := func(f func(*Config) *Duration) func(*Config) flag.Value {
		return func(c *Config) flag.Value { return f(c) }
	}
	return []field{
		{"addr", "listen address (HTTPS)", s(func(c *Config) *string { return &c.Addr })},
		{"data-dir", "directory for the SQLite store, root key file and generated certificate", s(func(c *Config) *string { return &c.DataDir })},
		{"store", "store: empty for SQLite in data-dir, sqlite:PATH, mysql://… or postgres://…", s(func(c *Config) *string { return &c.Store })},
		{"store-max-conns", "MySQL/PostgreSQL: connections per replica (default 32)", func(c *Config) flag.Value { return (*intValue)(&c.StoreMaxConns) }},
		{"store-conn-max-lifetime", "MySQL/PostgreSQL: recycle connections older than this (default 5m)", d(func(c *Config) *Duration { return &c.StoreConnMaxLifetime })},
		{"store-query-timeout", "MySQL/PostgreSQL: bound on each store call, retries included (default 5s)", d(func(c *Config) *Duration { return &c.StoreQueryTimeout })},
		{"tls-cert", "PEM certificate chain file", s(func(c *Config) *string { return &c.TLSCert })},
		{"tls-key", "PEM private key file", s(func(c *Config) *string { return &c.TLSKey })},
		{"tls-pkcs12", "PKCS#12 keystore with key and certificate (as BigDL's keystore.pkcs12)", s(func(c *Config) *string { return &c.TLSPKCS12 })},
		{"tls-pkcs12-password-file", "file holding the PKCS#12 password", s(func(c *Config) *string { return &c.TLSPKCS12Password })},
		{"tls-pkcs12-password-env", "environment variable holding the PKCS#12 password", s(func(c *Config) *string { return &c.TLSPKCS12PassEnv })},
		{"tls-pkcs12-password-rsa-key", "PPML ssl-password Secret: key.txt, the RSA key that decrypts tls-pkcs12-password-encrypted", s(func(c *Config) *string { return &c.TLSPKCS12PassRSAKey })},
		{"tls-pkcs12-password-encrypted", "PPML ssl-password Secret: output.bin, the PKCS#12 password encrypted to tls-pkcs12-password-rsa-key", s(func(c *Config) *string { return &c.TLSPKCS12PassEncrypted })},
		{"seal", "auto (root key from a file or variable) or shamir (start sealed, unseal with shares)", s(func(c *Config) *string { return &c.Seal })},
		{"tls-client-ca", "PEM CA certificates that sign client certificates (enables optional mutual TLS)", s(func(c *Config) *string { return &c.TLSClientCA })},
		{"tls-client-identities", "file mapping client certificate common names to identities: \"<CN> <user>\" or \"<CN> admin/<name>\" per line", s(func(c *Config) *string { return &c.ClientIdentities })},
		{"root-key-file", "root key file, base64 (default <data-dir>/root.key, created on first start)", s(func(c *Config) *string { return &c.RootKeyFile })},
		{"root-key-env", "environment variable holding the base64 root key, e.g. ROOT_KEY as in BigDL", s(func(c *Config) *string { return &c.RootKeyEnv })},
		{"admin-tokens", "file of admin identities, one \"<name> <argon2id hash>\" per line (kmsctl admin hash-token)", s(func(c *Config) *string { return &c.AdminTokens })},
		{"audit-log", "audit log: a file, - for stdout, or off", s(func(c *Config) *string { return &c.AuditLog })},
		{"audit-fail-closed", "refuse operations whose audit record cannot be written (default: drop and count)", b(func(c *Config) *bool { return &c.AuditFailClosed })},
		{"maintenance-interval", "how often scheduled rotations, deletions and usage counts are processed", d(func(c *Config) *Duration { return &c.Maintenance })},
		{"log-format", "log format: text or json", s(func(c *Config) *string { return &c.LogFormat })},
		{"log-level", "log level: debug, info, warn or error", s(func(c *Config) *string { return &c.LogLevel })},
		{"access-log", "log one line per request (path only, never the query); off by default: the audit log records every key access", b(func(c *Config) *bool { return &c.AccessLog })},
		{"dev", "development mode: in-memory store and ephemeral root key, nothing persists", b(func(c *Config) *bool { return &c.Dev })},
		{"attest-collateral-dir", "attestation: directory of Intel collateral (tcbinfo-<tee>-<fmspc>.json, qeidentity-<tee>.json, tcbinfo-chain.pem, CRLs)", s(func(c *Config) *string { return &c.AttestCollateralDir })},
		{"attest-pccs-url", "attestation: Intel PCCS (or PCS) base URL to fetch collateral from, e.g. https://pccs:8081", s(func(c *Config) *string { return &c.AttestPCCSURL })},
		{"attest-allow-mock-tee", "attestation: INSECURE, accept the mock TEE (development and CI only)", b(func(c *Config) *bool { return &c.AttestAllowMockTEE })},
		{"attest-audience", "attestation: this KMS's identity bound into quotes (e.g. its URL); required with attestation", s(func(c *Config) *string { return &c.AttestAudience })},
		{"attest-addr", "attestation: extra HTTPS listen address serving BigDL's attestation service at the root (e.g. :9875)", s(func(c *Config) *string { return &c.AttestAddr })},
		{"read-header-timeout", "time to read request headers", d(func(c *Config) *Duration { return &c.ReadHeaderTimeout })},
		{"read-timeout", "time to read a whole request", d(func(c *Config) *Duration { return &c.ReadTimeout })},
		{"write-timeout", "time to write a response", d(func(c *Config) *Duration { return &c.WriteTimeout })},
		{"idle-timeout", "keep-alive idle time", d(func(c *Config) *Duration { return &c.IdleTimeout })},
		{"shutdown-timeout", "time for in-flight requests to finish on SIGTERM", d(func(c *Config) *Duration { return &c.ShutdownTimeout })},
		{"max-header-bytes", "largest request header accepted", func(c *Config) flag.Value { return (*intValue)(&c.MaxHeaderBytes) }},
	}
}

// EnvName is the environment variable for a flag name.
func EnvName(flagName string) string {
	return "KMS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse builds a Config from args (without the program name), getenv and
// the file they name. Usage goes to out on -h.
func Parse(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var scratch Config
	fs := flag.NewFlagSet("kmsd", flag.ContinueOnError)
	fs.SetOutput(out)
	configPath := fs.String("config", getenv("KMS_CONFIG"), "JSON configuration file (env KMS_CONFIG)")
	for _, f := range fields() {
		fs.Var(f.value(&scratch), f.name, f.usage+" (env "+EnvName(f.name)+")")
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := Default()
	if *configPath != "" {
		if err := cfg.load(*configPath); err != nil {
			return Config{}, err
		}
	}
	byName := map[string]field{}
	for _, f := range fields() {
		byName[f.name] = f
		if v := getenv(EnvName(f.name)); v != "" {
			if err := f.value(&cfg).Set(v); err != nil {
				return Config{}, fmt.Errorf("%s: %w", EnvName(f.name), err)
			}
		}
	}
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if f, ok := byName[fl.Name]; ok && err == nil {
			err = f.value(&cfg).Set(fl.Value.String())
		}
	})
	if err != nil {
		return Config{}, err
	}
	return cfg, cfg.Validate()
}

func (c *Config) load(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	// Decode stops after one value: refuse anything after it rather than
	// silently ignoring it.
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("config file %s: unexpected data after the JSON object", path)
	}
	return nil
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Addr == "" {
		bad("addr is empty")
	}
	if c.DataDir == "" && !c.Dev {
		bad("data-dir is empty")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert and tls-key go together")
	}
	if c.TLSPKCS12 != "" && c.TLSCert != "" {
		bad("choose either tls-pkcs12 or tls-cert/tls-key")
	}
	if (c.TLSPKCS12PassRSAKey == "") != (c.TLSPKCS12PassEncrypted == "") {
		bad("tls-pkcs12-password-rsa-key and tls-pkcs12-password-encrypted go together")
	}
	if n := btoi(c.TLSPKCS12Password != "") + btoi(c.TLSPKCS12PassEnv != "") + btoi(c.TLSPKCS12PassRSAKey != ""); c.TLSPKCS12 != "" && n != 1 {
		bad("tls-pkcs12 needs exactly one of tls-pkcs12-password-file, tls-pkcs12-password-env or tls-pkcs12-password-rsa-key/-encrypted")
	}
	if c.Seal != "auto" && c.Seal != "shamir" {
		bad("seal must be auto or shamir, not %q", c.Seal)
	}
	if c.Seal == "shamir" && (c.RootKeyFile != "" || c.RootKeyEnv != "" || c.Dev) {
		bad("seal shamir takes no root-key-file, root-key-env or dev")
	}
	if (c.TLSClientCA == "") != (c.ClientIdentities == "") {
		bad("tls-client-ca and tls-client-identities go together")
	}
	if c.RootKeyFile != "" && c.RootKeyEnv != "" {
		bad("choose either root-key-file or root-key-env")
	}
	if c.Dev && (c.RootKeyFile != "" || c.RootKeyEnv != "" || c.Store != "") {
		bad("dev mode uses an in-memory store and an ephemeral root key; drop store and root-key options")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format must be text or json, not %q", c.LogFormat)
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		bad("%v", err)
	}
	if c.Store != "" && !strings.HasPrefix(c.Store, "sqlite:") && !strings.HasPrefix(c.Store, "mysql://") &&
		!strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		bad("store must start with sqlite:, mysql:// or postgres://")
	}
	for name, d := range map[string]Duration{"read-header-timeout": c.ReadHeaderTimeout, "read-timeout": c.ReadTimeout,
		"write-timeout": c.WriteTimeout, "idle-timeout": c.IdleTimeout, "shutdown-timeout": c.ShutdownTimeout,
		"maintenance-interval": c.Maintenance} {
		if d <= 0 {
			bad("%s must be positive", name)
		}
	}
	if c.StoreMaxConns < 0 || c.StoreConnMaxLifetime < 0 || c.StoreQueryTimeout < 0 {
		bad("store pool limits must not be negative")
	}
	if c.AuditLog == "" {
		bad("audit-log is empty: give a file, - for stdout, or off")
	}
	if c.AuditFailClosed && c.AuditLog == "off" {
		bad("audit-fail-closed needs an audit log")
	}
	c.validateAttest(bad)
	if c.MaxHeaderBytes < 1024 {
		bad("max-header-bytes must be at least 1024")
	}
	return errors.Join(errs...)
}

// AttestEnabled reports whether the attestation API is served: a
// collateral source or the mock TEE is configured.
func (c *Config) AttestEnabled() bool {
	return c.AttestCollateralDir != "" || c.AttestPCCSURL != "" || c.AttestAllowMockTEE
}

func (c *Config) validateAttest(bad func(string, ...any)) {
	if c.AttestCollateralDir != "" && c.AttestPCCSURL != "" {
		bad("choose either attest-collateral-dir or attest-pccs-url")
	}
	if c.AttestPCCSURL != "" && !strings.HasPrefix(c.AttestPCCSURL, "https://") && !strings.HasPrefix(c.AttestPCCSURL, "http://") {
		bad("attest-pccs-url must be an http:// or https:// URL")
	}
	if !c.AttestEnabled() {
		if c.AttestAudience != "" || c.AttestAddr != "" {
			bad("attest-audience and attest-addr need attestation: give attest-collateral-dir, attest-pccs-url or attest-allow-mock-tee")
		}
		return
	}
	if c.AttestAudience == "" {
		bad("attestation needs attest-audience: the identity of this KMS that quotes are bound to (e.g. its URL)")
	}
	if c.AttestAddr != "" && c.AttestAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
		bad("attest-addr must differ from addr")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// SQLitePath is the SQLite file the config selects, or "" for another store.
func (c *Config) SQLitePath() string {
	if c.Store == "" {
		return filepath.Join(c.DataDir, "kms.db")
	}
	if p, ok := strings.CutPrefix(c.Store, "sqlite:"); ok {
		return p
	}
	return ""
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (level int, err error) {
	switch strings.ToLower(s) {
	case "debug":
		return -4, nil
	case "info":
		return 0, nil
	case "warn":
		return 4, nil
	case "error":
		return 8, nil
	}
	return 0, fmt.Errorf("log-level must be debug, info, warn or error, not %q", s)
}

// Duration is a time.Duration written as "10s" in JSON and flags.
type Duration time.Duration

// Set implements flag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d *Duration) String() string { return time.Duration(*d).String() }

// UnmarshalJSON reads "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"10s\"")
	}
	return d.Set(s)
}

// MarshalJSON writes "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

type boolValue bool

func (b *boolValue) Set(v string) error {
	x, err := strconv.ParseBool(v)
	*b = boolValue(x)
	return err
}
func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

type intValue int

func (i *intValue) Set(v string) error {
	x, err := strconv.Atoi(v)
	*i = intValue(x)
	return err
}
func (i *intValue) String() string { return strconv.Itoa(int(*i)) }
