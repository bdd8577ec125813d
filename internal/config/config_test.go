package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env returns a getenv func over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes body to a file in a new temporary directory.
func writeFile(tb testing.TB, body string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "kms.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	got, err := Parse(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatalf("Parse(no args, no env) = %v", err)
	}
	if got != d {
		t.Errorf("Parse(no args, no env) = %+v, want Default() %+v", got, d)
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `{"addr": "file:1", "access-log": false, "read-timeout": "11s", "log-level": "warn"}`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *Config)
	}{
		{
			name: "default",
			want: func(c *Config) {},
		},
		{
			name: "file over default",
			args: []string{"-config", file},
			want: func(c *Config) {
				c.Addr, c.AccessLog, c.ReadTimeout, c.LogLevel = "file:1", false, Duration(11*time.Second), "warn"
			},
		},
		{
			name: "KMS_CONFIG names the file",
			env:  map[string]string{"KMS_CONFIG": file},
			want: func(c *Config) {
				c.Addr, c.AccessLog, c.ReadTimeout, c.LogLevel = "file:1", false, Duration(11*time.Second), "warn"
			},
		},
		{
			name: "env over file",
			args: []string{"-config", file},
			env:  map[string]string{"KMS_ADDR": "env:2", "KMS_ACCESS_LOG": "true", "KMS_READ_TIMEOUT": "22s"},
			want: func(c *Config) {
				c.Addr, c.AccessLog, c.ReadTimeout, c.LogLevel = "env:2", true, Duration(22*time.Second), "warn"
			},
		},
		{
			name: "flag over env over file",
			args: []string{"-config", file, "-addr", "flag:3", "-access-log=false", "-read-timeout", "33s", "-dev"},
			env:  map[string]string{"KMS_ADDR": "env:2", "KMS_ACCESS_LOG": "true", "KMS_READ_TIMEOUT": "22s", "KMS_LOG_LEVEL": "debug"},
			want: func(c *Config) {
				c.Addr, c.AccessLog, c.ReadTimeout, c.LogLevel, c.Dev = "flag:3", false, Duration(33*time.Second), "debug", true
			},
		},
		{
			name: "flag over default without file",
			args: []string{"-data-dir", "/srv/kms", "-max-header-bytes", "4096", "-log-format=json"},
			want: func(c *Config) { c.DataDir, c.MaxHeaderBytes, c.LogFormat = "/srv/kms", 4096, "json" },
		},
		{
			name: "empty env value is ignored",
			env:  map[string]string{"KMS_ADDR": ""},
			want: func(c *Config) {},
		},
		{
			name: "-config flag over KMS_CONFIG",
			args: []string{"-config", file},
			env:  map[string]string{"KMS_CONFIG": filepath.Join(t.TempDir(), "missing.json")},
			want: func(c *Config) {
				c.Addr, c.AccessLog, c.ReadTimeout, c.LogLevel = "file:1", false, Duration(11*time.Second), "warn"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Default()
			tt.want(&want)
			if got != want {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string // config file body, if any
		args []string
		env  map[string]string
		want []string // substrings of the error
	}{
		{name: "unknown key in file", file: `{"addr": ":1", "adr": ":2"}`, want: []string{`"adr"`, "kms.json"}},
		{name: "wrong type in file", file: `{"dev": "yes"}`, want: []string{"dev"}},
		{name: "bad duration in file", file: `{"read-timeout": "ten seconds"}`, want: []string{"ten seconds"}},
		{name: "duration number in file", file: `{"idle-timeout": 10}`, want: []string{`duration must be a string like "10s"`}},
		{name: "not JSON", file: `addr = ":1"`, want: []string{"kms.json"}},
		{name: "empty file", file: "\n", want: []string{"kms.json"}},
		{name: "trailing data in file", file: `{"addr": ":1"} {"addr": ":2"}`, want: []string{"kms.json"}},
		{name: "missing file", args: []string{"-config", "/nonexistent/kms.json"}, want: []string{"config file", "/nonexistent/kms.json"}},
		{name: "bad duration in env", env: map[string]string{"KMS_WRITE_TIMEOUT": "soon"}, want: []string{"KMS_WRITE_TIMEOUT"}},
		{name: "bad bool in env", env: map[string]string{"KMS_DEV": "maybe"}, want: []string{"KMS_DEV"}},
		{name: "bad int in env", env: map[string]string{"KMS_MAX_HEADER_BYTES": "lots"}, want: []string{"KMS_MAX_HEADER_BYTES"}},
		{name: "bad duration flag", args: []string{"-read-timeout", "5 s"}, want: []string{"read-timeout"}},
		{name: "unknown flag", args: []string{"-adr", ":1"}, want: []string{"adr"}},
		{name: "positional argument", args: []string{"serve"}, want: []string{`unexpected argument "serve"`}},
		{name: "invalid result", args: []string{"-log-level", "loud"}, want: []string{`"loud"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeFile(t, tt.file)}, args...)
			}
			_, err := Parse(args, env(tt.env), io.Discard)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := Parse([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
	for _, f := range fields() {
		if !strings.Contains(out.String(), "-"+f.name) || !strings.Contains(out.String(), EnvName(f.name)) {
			t.Errorf("usage does not document -%s and %s", f.name, EnvName(f.name))
		}
	}
}

// TestEveryFieldFromEachSource checks that each flag name is also a JSON key
// and an environment variable, and that the three agree.
func TestEveryFieldFromEachSource(t *testing.T) {
	t.Parallel()
	for _, f := range fields() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			// Values and companion flags that keep the result valid.
			valid := map[string]string{"store": "sqlite:x.db", "log-format": "json", "log-level": "warn", "seal": "shamir", "audit-log": "audit.log",
				"attest-pccs-url": "https://pccs:8081"}
			companions := map[string][]string{
				"tls-cert":                      {"-tls-key=k.pem"},
				"tls-key":                       {"-tls-cert=c.pem"},
				"tls-pkcs12":                    {"-tls-pkcs12-password-env=PW"},
				"tls-client-ca":                 {"-tls-client-identities=ids.txt"},
				"tls-client-identities":         {"-tls-client-ca=ca.pem"},
				"tls-pkcs12-password-rsa-key":   {"-tls-pkcs12-password-encrypted=output.bin"},
				"tls-pkcs12-password-encrypted": {"-tls-pkcs12-password-rsa-key=key.txt"},

				"attest-collateral-dir": {"-attest-audience=kms"},
				"attest-pccs-url":       {"-attest-audience=kms"},
				"attest-allow-mock-tee": {"-attest-audience=kms"},
				"attest-audience":       {"-attest-allow-mock-tee"},
				"attest-addr":           {"-attest-allow-mock-tee", "-attest-audience=kms"},
			}
			var text string
			var jsonValue any
			switch f.value(new(Config)).(type) {
			case *stringValue:
				text = "x-" + f.name
				if v, ok := valid[f.name]; ok {
					text = v
				}
				jsonValue = text
			case *boolValue:
				text, jsonValue = "true", true
			case *Duration:
				text, jsonValue = "7s", "7s"
			case *intValue:
				text, jsonValue = "2048", 2048
			default:
				t.Fatalf("no test value for %T", f.value(new(Config)))
			}
			body, err := json.Marshal(map[string]any{f.name: jsonValue})
			if err != nil {
				t.Fatal(err)
			}
			var fromFile Config
			if err := fromFile.load(writeFile(t, string(body))); err != nil {
				t.Fatalf("JSON key %q: %v", f.name, err)
			}
			if got := f.value(&fromFile).String(); got != text {
				t.Errorf("from file: %s = %q, want %q", f.name, got, text)
			}
			for _, src := range []struct {
				name string
				args []string
				env  map[string]string
			}{
				{"flag", append([]string{"-" + f.name + "=" + text}, companions[f.name]...), nil},
				{"env", companions[f.name], map[string]string{EnvName(f.name): text}},
			} {
				got, err := Parse(src.args, env(src.env), io.Discard)
				if err != nil {
					t.Fatalf("from %s: %v", src.name, err)
				}
				if s := f.value(&got).String(); s != text {
					t.Errorf("from %s: %s = %q, want %q", src.name, f.name, s, text)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(c *Config)
		want   []string // substrings, one per expected problem; none: valid
	}{
		{"valid/defaults", func(c *Config) {}, nil},
		{"valid/PEM pair", func(c *Config) { c.TLSCert, c.TLSKey = "c.pem", "k.pem" }, nil},
		{"valid/pkcs12 with password file", func(c *Config) { c.TLSPKCS12, c.TLSPKCS12Password = "ks.p12", "pw" }, nil},
		{"valid/pkcs12 with password env", func(c *Config) { c.TLSPKCS12, c.TLSPKCS12PassEnv = "ks.p12", "PW" }, nil},
		{"valid/root key env", func(c *Config) { c.RootKeyEnv = "ROOT_KEY" }, nil},
		{"valid/sqlite store", func(c *Config) { c.Store = "sqlite:/var/lib/kms/kms.db" }, nil},
		{"valid/mysql store", func(c *Config) { c.Store = "mysql://u@tcp(db)/kms" }, nil},
		{"valid/postgres store", func(c *Config) { c.Store = "postgres://db/kms" }, nil},
		{"valid/postgresql store", func(c *Config) { c.Store = "postgresql://db/kms" }, nil},
		{"valid/log level in capitals", func(c *Config) { c.LogLevel = "DEBUG" }, nil},
		{"valid/dev without data dir", func(c *Config) { c.Dev, c.DataDir = true, "" }, nil},
		{"valid/attestation from a collateral dir", func(c *Config) { c.AttestCollateralDir, c.AttestAudience = "/col", "https://kms:9876" }, nil},
		{"valid/attestation from a PCCS with its own listener", func(c *Config) {
			c.AttestPCCSURL, c.AttestAudience, c.AttestAddr = "https://pccs:8081", "kms-a", ":9875"
		}, nil},
		{"valid/mock TEE", func(c *Config) { c.AttestAllowMockTEE, c.AttestAudience = true, "dev" }, nil},
		{"attestation without audience", func(c *Config) { c.AttestCollateralDir = "/col" }, []string{"attestation needs attest-audience"}},
		{"attestation with two collateral sources", func(c *Config) {
			c.AttestCollateralDir, c.AttestPCCSURL, c.AttestAudience = "/col", "https://pccs", "kms"
		}, []string{"choose either attest-collateral-dir or attest-pccs-url"}},
		{"PCCS URL without scheme", func(c *Config) { c.AttestPCCSURL, c.AttestAudience = "pccs:8081", "kms" },
			[]string{"attest-pccs-url must be an http:// or https:// URL"}},
		{"attest listener without attestation", func(c *Config) { c.AttestAddr = ":9875" }, []string{"attest-audience and attest-addr need attestation"}},
		{"attest listener on the main address", func(c *Config) { c.AttestAllowMockTEE, c.AttestAudience, c.AttestAddr = true, "dev", c.Addr },
			[]string{"attest-addr must differ from addr"}},
		{"tls-cert without tls-key", func(c *Config) { c.TLSCert = "c.pem" }, []string{"tls-cert and tls-key go together"}},
		{"tls-key without tls-cert", func(c *Config) { c.TLSKey = "k.pem" }, []string{"tls-cert and tls-key go together"}},
		{"pkcs12 and PEM", func(c *Config) { c.TLSPKCS12, c.TLSPKCS12PassEnv, c.TLSCert, c.TLSKey = "ks", "PW", "c", "k" },
			[]string{"choose either tls-pkcs12 or tls-cert/tls-key"}},
		{"pkcs12 without password", func(c *Config) { c.TLSPKCS12 = "ks.p12" },
			[]string{"tls-pkcs12 needs exactly one of tls-pkcs12-password-file, tls-pkcs12-password-env or tls-pkcs12-password-rsa-key/-encrypted"}},
		{"pkcs12 with two passwords", func(c *Config) { c.TLSPKCS12, c.TLSPKCS12Password, c.TLSPKCS12PassEnv = "ks.p12", "pw", "PW" },
			[]string{"tls-pkcs12 needs exactly one of"}},
		{"rsa key without encrypted password", func(c *Config) { c.TLSPKCS12, c.TLSPKCS12PassRSAKey = "ks.p12", "key.txt" },
			[]string{"tls-pkcs12-password-rsa-key and tls-pkcs12-password-encrypted go together"}},
		{"both root key options", func(c *Config) { c.RootKeyFile, c.RootKeyEnv = "root.key", "ROOT_KEY" },
			[]string{"choose either root-key-file or root-key-env"}},
		{"bad log level", func(c *Config) { c.LogLevel = "loud" }, []string{`log-level must be debug, info, warn or error, not "loud"`}},
		{"bad log format", func(c *Config) { c.LogFormat = "xml" }, []string{`log-format must be text or json, not "xml"`}},
		{"bad store scheme", func(c *Config) { c.Store = "redis://cache" }, []string{"store must start with sqlite:, mysql:// or postgres://"}},
		{"store without scheme", func(c *Config) { c.Store = "/var/lib/kms.db" }, []string{"store must start with"}},
		{"dev with store", func(c *Config) { c.Dev, c.Store = true, "sqlite:x.db" }, []string{"dev mode"}},
		{"dev with root key file", func(c *Config) { c.Dev, c.RootKeyFile = true, "root.key" }, []string{"dev mode"}},
		{"dev with root key env", func(c *Config) { c.Dev, c.RootKeyEnv = true, "ROOT_KEY" }, []string{"dev mode"}},
		{"empty addr", func(c *Config) { c.Addr = "" }, []string{"addr is empty"}},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, []string{"data-dir is empty"}},
		{"zero timeout", func(c *Config) { c.WriteTimeout = 0 }, []string{"write-timeout must be positive"}},
		{"negative timeout", func(c *Config) { c.ShutdownTimeout = Duration(-time.Second) }, []string{"shutdown-timeout must be positive"}},
		{"small max header", func(c *Config) { c.MaxHeaderBytes = 1023 }, []string{"max-header-bytes must be at least 1024"}},
		{"several problems at once", func(c *Config) {
			c.TLSCert = "c.pem"
			c.TLSPKCS12 = "ks.p12"
			c.RootKeyFile, c.RootKeyEnv = "root.key", "ROOT_KEY"
			c.LogLevel, c.LogFormat = "loud", "xml"
			c.Store = "redis://x"
			c.ReadHeaderTimeout, c.IdleTimeout = 0, 0
		}, []string{
			"tls-cert and tls-key go together",
			"choose either tls-pkcs12 or tls-cert/tls-key",
			"tls-pkcs12 needs",
			"choose either root-key-file or root-key-env",
			`not "loud"`,
			`not "xml"`,
			"store must start with",
			"read-header-timeout must be positive",
			"idle-timeout must be positive",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tt.modify(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %d problems", len(tt.want))
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("Validate() = %T, want an errors.Join result", err)
			}
			if n := len(joined.Unwrap()); n != len(tt.want) {
				t.Errorf("Validate() reported %d problems, want %d:\n%v", n, len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q\ndoes not mention %q", err, w)
				}
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	for flagName, want := range map[string]string{
		"addr":                     "KMS_ADDR",
		"data-dir":                 "KMS_DATA_DIR",
		"tls-pkcs12-password-file": "KMS_TLS_PKCS12_PASSWORD_FILE",
		"read-header-timeout":      "KMS_READ_HEADER_TIMEOUT",
	} {
		if got := EnvName(flagName); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestSQLitePath(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, dataDir, store, want string }{
		{"default in data dir", "/srv/kms", "", filepath.Join("/srv/kms", "kms.db")},
		{"relative data dir", "kms-data", "", filepath.Join("kms-data", "kms.db")},
		{"sqlite: prefix", "/srv/kms", "sqlite:/var/lib/other.db", "/var/lib/other.db"},
		{"sqlite: relative", "/srv/kms", "sqlite:x.db", "x.db"},
		{"mysql", "/srv/kms", "mysql://u@tcp(db)/kms", ""},
		{"postgres", "/srv/kms", "postgres://db/kms", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Config{DataDir: tt.dataDir, Store: tt.store}
			if got := c.SQLitePath(); got != tt.want {
				t.Errorf("SQLitePath() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]int{"debug": -4, "info": 0, "WARN": 4, "Error": 8} {
		if got, err := ParseLevel(s); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %d, %v; want %d, nil", s, got, err, want)
		}
	}
	for _, s := range []string{"", "trace", "warning", " info"} {
		if _, err := ParseLevel(s); err == nil {
			t.Errorf("ParseLevel(%q) succeeded", s)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Duration(90 * time.Second))
	if err != nil || string(b) != `"1m30s"` {
		t.Errorf("Marshal(90s) = %s, %v; want \"1m30s\"", b, err)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"1m30s"`), &d); err != nil || d != Duration(90*time.Second) {
		t.Errorf("Unmarshal(\"1m30s\") = %v, %v", time.Duration(d), err)
	}
	for _, bad := range []string{`90`, `"90"`, `null`, `"1x"`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	full, err := json.Marshal(Default())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(full),
		`{}`,
		`{"addr": ":1", "dev": true, "read-timeout": "1s"}`,
		`{"adr": ":1"}`,
		`{"read-timeout": 10}`,
		`{"store": "sqlite:x", "tls-cert": "c", "tls-key": "k"}`,
		`{"max-header-bytes": 1e9}`,
		`[]`,
		`null`,
		`{"addr": ":1"} {}`,
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body []byte) {
		path := filepath.Join(dir, "kms.json")
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse([]string{"-config", path}, env(nil), io.Discard)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate refuses: %v", err)
		}
		// What Parse accepts survives a JSON round trip unchanged.
		again, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if err := os.WriteFile(path, again, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg2, err := Parse([]string{"-config", path}, env(nil), io.Discard)
		if err != nil || cfg2 != cfg {
			t.Fatalf("round trip through %s:\ngot  %+v, %v\nwant %+v", again, cfg2, err, cfg)
		}
	})
}
