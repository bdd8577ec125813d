package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
)

// The native API commands (docs/kmsctl.md, "Native API"): versioned primary
// keys ("key ..."), small-payload encryption and envelope data keys
// (nativedata.go), and the admin and seal operations (admin.go). They send
// the credential in the Authorization header, never in a URL.

// nativeOpts are the flags of the native, admin and sys commands.
type nativeOpts struct {
	admin          string // --admin NAME
	adminTokenFile string
	owner          string // --owner USER: an admin acting on a user's keys
	json           bool

	// key create / key config
	rotationPeriod       time.Duration
	exportable           bool
	minDecryptionVersion int
	days                 int // key schedule-deletion

	// encrypt-data and friends
	key          string
	context      contextFlag
	toKey        string
	toContext    contextFlag
	spec         string
	bytes        int
	noPlaintext  bool
	plaintextOut string
	batch        string

	// sys init
	shares, threshold int
	shareDir          string
}

// nativeCommands are the native API, admin and sys commands, in help
// order.
func nativeCommands() []*command {
	cmds := append([]*command{}, keyLifecycleCommands...)
	cmds = append(cmds, dataCommands...)
	return append(cmds, adminCommands...)
}

const keyGroupHelp = "The key commands manage the versioned primary keys of the native API (/v1):\n" +
	"create, describe, list, rotate, configure, enable, disable and schedule or\n" +
	"cancel deletion. Output is for people; --json prints the API's JSON.\n\n" +
	"They authenticate as --user with the user's token, or, given --admin or\n" +
	"--owner, as an admin (--admin, KMS_ADMIN) with the admin token from\n" +
	"--admin-token-file, KMS_ADMIN_TOKEN, KMS_ADMIN_TOKEN_FILE, the config file or\n" +
	"a prompt. --owner USER acts on USER's keys (admins only)."

var keyLifecycleCommands = []*command{
	{
		name: "key create", args: "NAME", short: "create a versioned primary key (native API)", kms: true,
		long: "Creates primary key NAME at version 1, enabled. With --rotation-period, kmsd adds\n" +
			"a version every period (at least 1h). With --exportable, an attested workload\n" +
			"that the key's release policy accepts may receive the key itself\n" +
			"('kmsctl attest release --export-primary-key'); this is decided at creation and\n" +
			"never changes. Key names are never reused, not even after deletion.",
		flags: keyFlags(func(fs *flag.FlagSet, o *cmdOpts) {
			fs.DurationVar(&o.native.rotationPeriod, "rotation-period", 0, "rotate automatically every `duration`, e.g. 720h (default: never)")
			fs.BoolVar(&o.native.exportable, "exportable", false, "let attested workloads receive the key itself (fixed at creation)")
		}),
		run: runKeyOp(checkRotationPeriod, func(ctx context.Context, cl *client.Client, name string, o *cmdOpts) (*api.Key, error) {
			return cl.CreateKey(ctx, name, &client.CreateKeyOptions{RotationPeriod: o.native.rotationPeriod, Exportable: o.native.exportable})
		}, func(k *api.Key) string { return fmt.Sprintf("key %q created (version %d)", k.Name, k.LatestVersion) }),
	},
	{
		name: "key describe", args: "NAME", short: "show a primary key's state and versions", kms: true,
		flags: keyFlags(nil),
		run: runKeyOp(nil, func(ctx context.Context, cl *client.Client, name string, _ *cmdOpts) (*api.Key, error) {
			return cl.DescribeKey(ctx, name)
		}, describeKey),
	},
	{
		name: "key list", short: "list primary keys", kms: true,
		long:  "Lists the user's keys; an admin lists every owner's, or --owner's.",
		flags: keyFlags(nil), run: runKeyList,
	},
	{
		name: "key rotate", args: "NAME", short: "add a new version to a primary key", kms: true,
		long: "New ciphertexts and data keys use the new version; older versions keep\n" +
			"decrypting down to the key's minimum decryption version (key config).\n" +
			"Exits with 4 if another rotation of the key won a race.",
		flags: keyFlags(nil),
		run: runKeyOp(nil, func(ctx context.Context, cl *client.Client, name string, _ *cmdOpts) (*api.Key, error) {
			return cl.RotateKey(ctx, name)
		}, func(k *api.Key) string { return fmt.Sprintf("key %q rotated to version %d", k.Name, k.LatestVersion) }),
	},
	{
		name: "key config", args: "NAME", short: "set a key's minimum decryption version or rotation period", kms: true,
		long: "--min-decryption-version N refuses ciphertexts and data keys of versions below\n" +
			"N from now on; it can only be raised. --rotation-period 0 turns scheduled\n" +
			"rotation off.",
		flags: keyFlags(func(fs *flag.FlagSet, o *cmdOpts) {
			fs.IntVar(&o.native.minDecryptionVersion, "min-decryption-version", 0, "refuse versions below `N`")
			fs.DurationVar(&o.native.rotationPeriod, "rotation-period", 0, "rotate automatically every `duration`; 0 for never")
		}),
		run: runKeyOp(keyConfig, configureKey, func(k *api.Key) string {
			return fmt.Sprintf("key %q: minimum decryption version %d, rotation period %s",
				k.Name, k.MinDecryptionVersion, rotationPeriod(k))
		}),
	},
	{
		name: "key enable", args: "NAME", short: "enable a disabled primary key", kms: true,
		long:  "Exits with 8 for a key scheduled for deletion: cancel the deletion first.",
		flags: keyFlags(nil),
		run: runKeyOp(nil, func(ctx context.Context, cl *client.Client, name string, _ *cmdOpts) (*api.Key, error) {
			return cl.EnableKey(ctx, name)
		}, func(k *api.Key) string { return fmt.Sprintf("key %q enabled", k.Name) }),
	},
	{
		name: "key disable", args: "NAME", short: "disable a primary key (nothing is deleted)", kms: true,
		long: "A disabled key no longer encrypts, decrypts or opens data keys, through the\n" +
			"BigDL API too, until 'kmsctl key enable'.",
		flags: keyFlags(nil),
		run: runKeyOp(nil, func(ctx context.Context, cl *client.Client, name string, _ *cmdOpts) (*api.Key, error) {
			return cl.DisableKey(ctx, name)
		}, func(k *api.Key) string { return fmt.Sprintf("key %q disabled", k.Name) }),
	},
	{
		name: "key schedule-deletion", args: "NAME", short: "make a key unusable now and destroy it after a waiting period", kms: true,
		long: "The key stops working at once. After --days days (7 to 30) kmsd destroys its\n" +
			"material, and with it every ciphertext and data key made under it, unless\n" +
			"'kmsctl key cancel-deletion' runs first.",
		flags: keyFlags(func(fs *flag.FlagSet, o *cmdOpts) {
			fs.IntVar(&o.native.days, "days", 30, "waiting period in `days`, 7 to 30")
		}),
		run: runKeyOp(nil, func(ctx context.Context, cl *client.Client, name string, o *cmdOpts) (*api.Key, error) {
			return cl.ScheduleKeyDeletion(ctx, name, o.native.days)
		}, func(k *api.Key) string {
			return fmt.Sprintf("key %q is scheduled for deletion on %s; until then 'kmsctl key cancel-deletion %s' keeps it",
				k.Name, fmtTime(k.DeletionDate), k.Name)
		}),
	},
	{
		name: "key cancel-deletion", args: "NAME", short: "cancel a scheduled deletion (the key stays disabled)", kms: true,
		flags: keyFlags(nil),
		run: runKeyOp(nil, func(ctx context.Context, cl *client.Client, name string, _ *cmdOpts) (*api.Key, error) {
			return cl.CancelKeyDeletion(ctx, name)
		}, func(k *api.Key) string {
			return fmt.Sprintf("deletion of key %q cancelled; it stays disabled until 'kmsctl key enable %s'", k.Name, k.Name)
		}),
	},
}

// credFlags are the flags that choose an admin credential; withOwner adds
// --owner.
func credFlags(fs *flag.FlagSet, o *cmdOpts, withOwner bool) {
	fs.StringVar(&o.native.admin, "admin", "", "authenticate as admin `name` (env KMS_ADMIN)")
	fs.StringVar(&o.native.adminTokenFile, "admin-token-file", "", "read the admin token from `file`, '-' for stdin (env KMS_ADMIN_TOKEN_FILE)")
	if withOwner {
		fs.StringVar(&o.native.owner, "owner", "", "act on `user`'s keys (admins only; implies the admin credential)")
	}
}

func jsonFlag(fs *flag.FlagSet, o *cmdOpts) {
	fs.BoolVar(&o.native.json, "json", false, "print the API's JSON")
}

// keyFlags registers the flags every key command has, then extra.
func keyFlags(extra func(*flag.FlagSet, *cmdOpts)) func(*flag.FlagSet, *cmdOpts) {
	return func(fs *flag.FlagSet, o *cmdOpts) {
		if extra != nil {
			extra(fs, o)
		}
		jsonFlag(fs, o)
		credFlags(fs, o, true)
	}
}

// credential says which credential a native command sends.
type credential int

const (
	credNone  credential = iota // none (sys status)
	credUser                    // the user's, or the admin's given --admin or --owner
	credAdmin                   // the admin's
)

// nativeClient resolves the settings and the credential cred and returns a
// client for the native API, scoped to --owner if given.
func nativeClient(c *cli, o *cmdOpts, cred credential) (*client.Client, error) {
	s, err := o.resolve(c)
	if err != nil {
		return nil, err
	}
	if cred == credUser && (o.set["admin"] || o.set["owner"]) {
		cred = credAdmin
	}
	var opts []client.Option
	switch cred {
	case credUser:
		user, err := s.needUser()
		if err != nil {
			return nil, err
		}
		token, err := o.token(c, s, "Token for user "+user, false)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithToken(user, token))
	case credAdmin:
		if s.admin == "" {
			return nil, usageErrorf("no admin: use --admin NAME, KMS_ADMIN or the config file's \"admin\"")
		}
		token, err := o.adminToken(c, s, "Token for admin "+s.admin, false)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithAdminToken(s.admin, token))
	}
	cl, err := s.client(c, opts...)
	if err != nil {
		return nil, err
	}
	if o.native.owner != "" {
		cl = cl.ForOwner(o.native.owner)
	}
	return cl, nil
}

// adminToken returns the admin token from the strongest source that has
// one: --admin-token-file (or KMS_ADMIN_TOKEN_FILE), KMS_ADMIN_TOKEN, the
// config file's admin-token-file, then a prompt without echo if stdin is
// a terminal. It mirrors token, with sources of its own so that a user's
// token is never sent as an admin's.
func (o *cmdOpts) adminToken(c *cli, s *settings, prompt string, confirm bool) (string, error) {
	switch {
	case s.adminTokenFile != "":
		return o.readTokenFile(c, s.adminTokenFile)
	case s.envAdminToken != "":
		return s.envAdminToken, nil
	case s.configAdminTokenF != "":
		return o.readTokenFile(c, s.configAdminTokenF)
	case c.stdinTerminal >= 0 && o.stdinTaken == "":
		return c.promptToken(prompt, confirm)
	}
	return "", usageErrorf("no admin token: use --admin-token-file FILE, --admin-token-file - (stdin), " +
		"KMS_ADMIN_TOKEN, KMS_ADMIN_TOKEN_FILE, the config file's admin-token-file, or run in a terminal to be prompted")
}

// withTimeout bounds one request by --timeout.
func withTimeout(ctx context.Context, o *cmdOpts) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, o.timeout)
}

// runKeyOp makes the run function of a key command that takes one NAME:
// check (if not nil) validates the flags before anything is asked for,
// op calls kmsd, and the key is printed as JSON or as say puts it.
func runKeyOp(check func(*cmdOpts) error, op func(context.Context, *client.Client, string, *cmdOpts) (*api.Key, error),
	say func(*api.Key) string) func(context.Context, *cli, *cmdOpts, []string) error {
	return func(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
		name, err := oneName(args, "NAME")
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(o); err != nil {
				return err
			}
		}
		cl, err := nativeClient(c, o, credUser)
		if err != nil {
			return err
		}
		ctx, cancel := withTimeout(ctx, o)
		defer cancel()
		k, err := op(ctx, cl, name, o)
		if err != nil {
			return err
		}
		if o.native.json {
			return printJSON(c.stdout, k)
		}
		_, err = fmt.Fprintln(c.stdout, say(k))
		return err
	}
}

func checkRotationPeriod(o *cmdOpts) error {
	if o.native.rotationPeriod < 0 {
		return usageErrorf("--rotation-period must not be negative")
	}
	return nil
}

// keyConfig checks the flags of "key config".
func keyConfig(o *cmdOpts) error {
	if !o.set["min-decryption-version"] && !o.set["rotation-period"] {
		return usageErrorf("nothing to change: give --min-decryption-version or --rotation-period")
	}
	if o.set["min-decryption-version"] && o.native.minDecryptionVersion < 1 {
		return usageErrorf("--min-decryption-version must be at least 1")
	}
	return checkRotationPeriod(o)
}

func configureKey(ctx context.Context, cl *client.Client, name string, o *cmdOpts) (*api.Key, error) {
	var cfg client.KeyConfig
	if o.set["min-decryption-version"] {
		cfg.MinDecryptionVersion = o.native.minDecryptionVersion
	}
	if o.set["rotation-period"] {
		cfg.RotationPeriod = &o.native.rotationPeriod
	}
	return cl.ConfigureKey(ctx, name, cfg)
}

func runKeyList(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	if len(args) > 0 {
		return usageErrorf("key list takes no arguments")
	}
	cl, err := nativeClient(c, o, credUser)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	keys, err := cl.ListKeys(ctx)
	if err != nil {
		return err
	}
	if o.native.json {
		if keys == nil {
			keys = []api.Key{}
		}
		return printJSON(c.stdout, api.KeyList{Keys: keys})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OWNER\tNAME\tSTATE\tVERSION\tMIN\tROTATION\tCREATED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", k.Owner, k.Name, k.State,
			k.LatestVersion, k.MinDecryptionVersion, rotationPeriod(&k), fmtTime(&k.Created))
	}
	return tw.Flush()
}

// describeKey is "key describe"'s text.
func describeKey(k *api.Key) string {
	var b strings.Builder
	line := func(label, format string, a ...any) {
		fmt.Fprintf(&b, "%-24s %s\n", label+":", fmt.Sprintf(format, a...))
	}
	line("name", "%s", k.Name)
	line("owner", "%s", k.Owner)
	line("state", "%s", k.State)
	line("latest version", "%d", k.LatestVersion)
	line("min decryption version", "%d", k.MinDecryptionVersion)
	line("rotation period", "%s", rotationPeriod(k))
	if k.Exportable {
		line("exportable", "yes (to attested workloads)")
	}
	if k.LastRotated != nil {
		line("last rotated", "%s", fmtTime(k.LastRotated))
	}
	if k.DeletionDate != nil {
		line("deletion date", "%s", fmtTime(k.DeletionDate))
	}
	line("created", "%s", fmtTime(&k.Created))
	b.WriteString("versions:\n")
	versions := append([]api.KeyVersion(nil), k.Versions...)
	sort.Slice(versions, func(i, j int) bool { return versions[i].Version < versions[j].Version })
	for _, v := range versions {
		fmt.Fprintf(&b, "  %-4d created %s, %d encryptions\n", v.Version, fmtTime(&v.Created), v.Encryptions)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// rotationPeriod is a key's scheduled rotation period, "720h" or "off".
func rotationPeriod(k *api.Key) string {
	if k.RotationPeriodSeconds == 0 {
		return "off"
	}
	return fmtDuration(time.Duration(k.RotationPeriodSeconds) * time.Second)
}

// fmtDuration drops the zero minutes and seconds that time.Duration's
// String keeps: 720h, 1h30m.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// printJSON prints v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// contextFlag is a repeatable KEY=VALUE flag: an encryption context.
type contextFlag map[string]string

func (m *contextFlag) String() string {
	if m == nil || *m == nil {
		return ""
	}
	pairs := make([]string, 0, len(*m))
	for k, v := range *m {
		pairs = append(pairs, k+"="+v)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func (m *contextFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	if *m == nil {
		*m = contextFlag{}
	}
	if _, dup := (*m)[k]; dup {
		return fmt.Errorf("context key %q given twice", k)
	}
	(*m)[k] = v
	return nil
}
