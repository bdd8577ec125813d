package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"golang.org/x/crypto/argon2"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
)

// The admin and sys commands: admin identities, users and the seal.

const adminGroupHelp = "The admin commands manage kmsd's users through the native API, with an admin\n" +
	"credential: --admin NAME (or KMS_ADMIN, or the config file's \"admin\") and the\n" +
	"admin token from --admin-token-file FILE, --admin-token-file - (stdin),\n" +
	"KMS_ADMIN_TOKEN, KMS_ADMIN_TOKEN_FILE, the config file's admin-token-file, or a\n" +
	"prompt without echo. Admin identities are configured at kmsd's start\n" +
	"(-admin-tokens FILE, lines made by 'kmsctl admin hash-token')."

const sysGroupHelp = "The sys commands show and change the seal of kmsd's root key. 'sys status'\n" +
	"needs no credential; the others need an admin's (see 'kmsctl help admin').\n" +
	"A kmsd started with -seal shamir is initialised once with 'sys init', which\n" +
	"prints the unseal shares; after each restart it stays sealed (exit code 6 for\n" +
	"every key operation) until 'sys unseal' has received the threshold of shares."

var adminCommands = []*command{
	{
		name: "admin hash-token", args: "[NAME]", short: "print an admin identity line for kmsd's -admin-tokens file",
		long: "Reads a new admin token like every admin token (--admin-token-file,\n" +
			"KMS_ADMIN_TOKEN, KMS_ADMIN_TOKEN_FILE, or a prompt that asks twice) and prints\n" +
			"\"NAME <argon2id hash>\", a line of the file that kmsd's -admin-tokens names.\n" +
			"NAME defaults to --admin or KMS_ADMIN. Nothing is sent anywhere. Make the\n" +
			"token long and random, e.g. (umask 077; head -c 32 /dev/urandom | base64 > admin.token).",
		flags: func(fs *flag.FlagSet, o *cmdOpts) { credFlags(fs, o, false) },
		run:   runHashToken,
	},
	{
		name: "admin users", args: "list | disable NAME | enable NAME | rotate-token NAME", kms: true,
		short: "list users, disable or enable one, or give it a new token",
		long: "list prints every user (never tokens). disable makes kmsd refuse a user's\n" +
			"token (exit code 8) and keeps its keys; enable undoes it. rotate-token gives\n" +
			"the user a new random token, revoking the old one, and prints it once, on\n" +
			"stdout or into -o FILE (mode 0600): kmsd keeps only its hash.",
		flags: func(fs *flag.FlagSet, o *cmdOpts) {
			fs.StringVar(&o.output, "output", "", "rotate-token: write the new token to `file` (mode 0600)")
			fs.StringVar(&o.output, "o", "", "short for --output `file`")
			fs.BoolVar(&o.force, "force", false, "replace an existing --output")
			jsonFlag(fs, o)
			credFlags(fs, o, false)
		},
		run: runAdminUsers,
	},
	{
		name: "sys status", short: "show whether kmsd is initialised and sealed", kms: true,
		long: "Needs no credential. Exits with 0 when the server is unsealed, and with 6\n" +
			"(after printing the status) while it is sealed or not initialised.",
		flags: jsonFlag, run: runSysStatus,
	},
	{
		name: "sys init", short: "initialise a -seal shamir kmsd and print its unseal shares", kms: true,
		long: "Creates the root key of a kmsd started with -seal shamir, splits it into\n" +
			"--shares shares of which --threshold recover it, and unseals the server.\n" +
			"The shares are printed as JSON lines, {\"index\":N,\"content\":\"...\"}, or written\n" +
			"to --share-dir DIR as share-N.json (mode 0600). They are shown this once and\n" +
			"kmsd does not keep them: give each to a different keeper. Exits with 4 if the\n" +
			"server is already initialised.",
		flags: func(fs *flag.FlagSet, o *cmdOpts) {
			fs.IntVar(&o.native.shares, "shares", 5, "number of `shares`")
			fs.IntVar(&o.native.threshold, "threshold", 3, "shares needed to unseal")
			fs.StringVar(&o.native.shareDir, "share-dir", "", "write share-N.json files into `dir` (created, mode 0700) instead of stdout")
			credFlags(fs, o, false)
		},
		run: runSysInit,
	},
	{
		name: "sys unseal", args: "[SHARE-FILE|-]", short: "submit unseal shares to a sealed kmsd", kms: true,
		long: "Reads shares, one JSON line each as 'sys init' printed them, from SHARE-FILE or\n" +
			"stdin ('-', the default; a prompt without echo on a terminal), and submits\n" +
			"them until the server is unsealed. Shares are never command-line arguments\n" +
			"and never printed. When the threshold is reached with shares that do not\n" +
			"recover the root key, kmsd discards every share received: start again.",
		flags: func(fs *flag.FlagSet, o *cmdOpts) { jsonFlag(fs, o); credFlags(fs, o, false) },
		run:   runSysUnseal,
	},
	{
		name: "sys rotate-root", short: "rotate the root key and re-wrap every primary key", kms: true,
		long: "Re-wraps every primary key under a new root key version while kmsd keeps\n" +
			"serving; the unseal shares (or root key file) stay the same. With many keys it\n" +
			"may take minutes: it waits without a time limit unless --timeout is given, and\n" +
			"a rotation cut short resumes at the next call or start.",
		flags: func(fs *flag.FlagSet, o *cmdOpts) { jsonFlag(fs, o); credFlags(fs, o, false) },
		run:   runSysRotateRoot,
	},
}

// Admin token hashes, in the PHC format that kmsd's internal/auth reads:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, unpadded standard base64.
// kmsctl reimplements HashToken instead of importing internal/auth, which
// would link the server's domain packages (kms, keyring) into the CLI; the
// format is a stable contract (kmsd reads the parameters from each hash),
// and a test checks that auth.VerifyToken accepts these hashes.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
	// maxAdminToken is kmsd's limit (auth.MaxTokenLen).
	maxAdminToken = 512
	// minAdminToken is the length below which hash-token warns.
	minAdminToken = 24
	// maxNameLen is kmsd's limit on names (kms.MaxNameLen).
	maxNameLen = 128
)

func hashToken(token []byte) string {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	sum := argon2.IDKey(token, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(sum))
}

// checkName applies kmsd's rules for user, key and admin names, so that a
// hash-token line is not refused only when kmsd starts.
func checkName(kind, s string) error {
	switch {
	case s == "":
		return usageErrorf("%s is empty", kind)
	case len(s) > maxNameLen:
		return usageErrorf("%s is longer than %d characters", kind, maxNameLen)
	case s[0] == '.':
		return usageErrorf("%s must not start with '.'", kind)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return usageErrorf("%s may contain only letters, digits, '.', '_' and '-'", kind)
		}
	}
	return nil
}

func runHashToken(_ context.Context, c *cli, o *cmdOpts, args []string) error {
	s, err := o.resolve(c)
	if err != nil {
		return err
	}
	switch len(args) {
	case 0:
	case 1:
		s.admin = args[0]
	default:
		return usageErrorf("want at most one NAME argument")
	}
	if s.admin == "" {
		return usageErrorf("no admin name: give NAME, --admin or KMS_ADMIN")
	}
	if err := checkName("admin name", s.admin); err != nil {
		return err
	}
	token, err := o.adminToken(c, s, "New token for admin "+s.admin, true)
	if err != nil {
		return err
	}
	switch {
	case len(token) > maxAdminToken:
		return usageErrorf("the token is longer than %d bytes", maxAdminToken)
	case strings.ContainsFunc(token, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return usageErrorf("the token contains a control character")
	case len(token) < minAdminToken:
		fmt.Fprintf(c.stderr, "kmsctl: warning: the token is shorter than %d characters; prefer 32 random bytes in base64\n", minAdminToken)
	}
	_, err = fmt.Fprintf(c.stdout, "%s %s\n", s.admin, hashToken([]byte(token)))
	return err
}

func runAdminUsers(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	if len(args) == 0 {
		return usageErrorf("admin users needs a verb: list, disable NAME, enable NAME or rotate-token NAME")
	}
	verb, args := args[0], args[1:]
	var name string
	switch verb {
	case "list":
		if len(args) > 0 {
			return usageErrorf("admin users list takes no arguments")
		}
	case "disable", "enable", "rotate-token":
		var err error
		if name, err = oneName(args, "NAME"); err != nil {
			return err
		}
	default:
		return usageErrorf("admin users: unknown verb %q: want list, disable, enable or rotate-token", verb)
	}
	if o.output != "" && verb != "rotate-token" {
		return usageErrorf("--output is for rotate-token")
	}
	if err := refuseExistingFile(o.output, o.force); err != nil {
		return err
	}
	cl, err := nativeClient(c, o, credAdmin)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	switch verb {
	case "list":
		return listUsers(ctx, c, o, cl)
	case "rotate-token":
		return rotateUserToken(ctx, c, o, cl, name)
	}
	op := cl.DisableUser
	if verb == "enable" {
		op = cl.EnableUser
	}
	u, err := op(ctx, name)
	if err != nil {
		return err
	}
	if o.native.json {
		return printJSON(c.stdout, u)
	}
	_, err = fmt.Fprintf(c.stdout, "user %q %sd\n", u.Name, verb)
	return err
}

func listUsers(ctx context.Context, c *cli, o *cmdOpts, cl *client.Client) error {
	users, err := cl.ListUsers(ctx)
	if err != nil {
		return err
	}
	if o.native.json {
		if users == nil {
			users = []api.User{}
		}
		return printJSON(c.stdout, api.UserList{Users: users})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tCREATED")
	for _, u := range users {
		state := "enabled"
		if u.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, state, fmtTime(&u.Created))
	}
	return tw.Flush()
}

func rotateUserToken(ctx context.Context, c *cli, o *cmdOpts, cl *client.Client, name string) error {
	token, err := cl.RotateUserToken(ctx, name)
	if err != nil {
		return err
	}
	if o.native.json {
		return printJSON(c.stdout, api.TokenResponse{Token: token})
	}
	if o.output != "" && o.output != "-" {
		if err := writeFileAtomic(o.output, []byte(token+"\n"), 0o600); err != nil {
			return fmt.Errorf("the token of user %q was rotated, but writing it failed (rotate again): %w", name, err)
		}
		fmt.Fprintf(c.stderr, "kmsctl: new token of user %q written to %s; the old one no longer works\n", name, o.output)
		return nil
	}
	fmt.Fprintf(c.stderr, "kmsctl: new token of user %q, shown once (kmsd keeps only its hash); the old one no longer works\n", name)
	_, err = fmt.Fprintln(c.stdout, token)
	return err
}

func runSysStatus(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	if len(args) > 0 {
		return usageErrorf("sys status takes no arguments")
	}
	cl, err := nativeClient(c, o, credNone)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	st, err := cl.SealStatus(ctx)
	if err != nil {
		return err
	}
	if o.native.json {
		err = printJSON(c.stdout, st)
	} else {
		err = printSealStatus(c.stdout, st)
	}
	if err != nil {
		return err
	}
	return sealedError(st)
}

// sealedError is nil for an unsealed server, and otherwise an error that
// says what to do and exits with 6.
func sealedError(st *api.SealStatus) error {
	switch {
	case !st.Initialized:
		return &errSealed{"the server is not initialised: run 'kmsctl sys init'"}
	case st.Sealed:
		return &errSealed{fmt.Sprintf("the server is sealed (%d of %d shares received): run 'kmsctl sys unseal'",
			st.Progress, st.Threshold)}
	}
	return nil
}

// errSealed is a sealed server's state as "sys status" reports it.
type errSealed struct{ msg string }

func (e *errSealed) Error() string { return e.msg }
func (e *errSealed) Unwrap() error { return client.ErrSealed }

func printSealStatus(w io.Writer, st *api.SealStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "initialized:\t%v\n", st.Initialized)
	fmt.Fprintf(tw, "sealed:\t%v\n", st.Sealed)
	fmt.Fprintf(tw, "mode:\t%s\n", st.Mode)
	if st.Threshold > 0 {
		fmt.Fprintf(tw, "threshold:\t%d of %d shares\n", st.Threshold, st.Shares)
	}
	if st.Sealed && st.Initialized {
		fmt.Fprintf(tw, "progress:\t%d of %d\n", st.Progress, st.Threshold)
	}
	if st.RootVersion > 0 {
		fmt.Fprintf(tw, "root version:\t%d\n", st.RootVersion)
	}
	if st.Rotating {
		fmt.Fprintf(tw, "rotating:\t%v\n", st.Rotating)
	}
	return tw.Flush()
}

func runSysInit(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	n := &o.native
	if len(args) > 0 {
		return usageErrorf("sys init takes no arguments")
	}
	if n.shares < 1 || n.threshold < 1 || n.threshold > n.shares {
		return usageErrorf("want 1 <= --threshold <= --shares")
	}
	var paths []string
	if n.shareDir != "" {
		for i := 1; i <= n.shares; i++ {
			paths = append(paths, filepath.Join(n.shareDir, fmt.Sprintf("share-%d.json", i)))
		}
		for _, p := range paths {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s exists: kmsctl never replaces a share file", p)
			}
		}
		if err := os.MkdirAll(n.shareDir, 0o700); err != nil {
			return err
		}
	}
	cl, err := nativeClient(c, o, credAdmin)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	r, err := cl.Init(ctx, n.shares, n.threshold)
	if err != nil {
		return err
	}
	if n.shareDir == "" {
		fmt.Fprintf(c.stderr, "kmsctl: the server is initialised and unsealed. These %d unseal shares are shown\n"+
			"once and kmsd does not keep them: give each to a different keeper; any %d of them\n"+
			"unseal the server after a restart ('kmsctl sys unseal').\n", len(r.Shares), r.Threshold)
		enc := json.NewEncoder(c.stdout)
		for _, s := range r.Shares {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	}
	var written []string
	for _, s := range r.Shares {
		b, _ := json.Marshal(s)
		p := filepath.Join(n.shareDir, fmt.Sprintf("share-%d.json", s.Index))
		if err := writeFileAtomic(p, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("the server is initialised, but writing its shares failed (those written: %s): %w",
				strings.Join(written, ", "), err)
		}
		written = append(written, p)
	}
	fmt.Fprintf(c.stderr, "kmsctl: the server is initialised and unsealed. kmsd does not keep the shares:\n"+
		"give each file to a different keeper and delete it here; any %d of them unseal the server.\n", r.Threshold)
	_, err = fmt.Fprintf(c.stdout, "wrote %d shares: %s\n", len(written), strings.Join(written, " "))
	return err
}

func runSysUnseal(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	shares, err := readShares(c, o, args)
	if err != nil {
		return err
	}
	cl, err := nativeClient(c, o, credAdmin)
	if err != nil {
		return err
	}
	var st *api.SealStatus
	for _, s := range shares {
		ctx, cancel := withTimeout(ctx, o)
		st, err = cl.Unseal(ctx, s)
		cancel()
		if err != nil {
			return err
		}
		if !st.Sealed {
			// Further shares are not needed: they stay with their keeper.
			break
		}
	}
	if o.native.json {
		return printJSON(c.stdout, st)
	}
	if st.Sealed {
		_, err = fmt.Fprintf(c.stdout, "still sealed: %d of %d shares received\n", st.Progress, st.Threshold)
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "unsealed (root key version %d)\n", st.RootVersion)
	return err
}

// readShares reads the shares of "sys unseal" from a file, stdin or a
// prompt. Share contents never appear in errors.
func readShares(c *cli, o *cmdOpts, args []string) ([]api.Share, error) {
	path := "-"
	switch len(args) {
	case 0:
	case 1:
		path = args[0]
	default:
		return nil, usageErrorf("want at most one SHARE-FILE argument")
	}
	var text []byte
	switch {
	case path == "-" && c.stdinTerminal >= 0:
		tok, err := c.promptToken("Unseal share (the JSON line)", false)
		if err != nil {
			return nil, err
		}
		text = []byte(tok)
	case path == "-":
		if err := o.takeStdin("SHARE-FILE -"); err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(c.stdin, maxTokenFile+1))
		if err != nil {
			return nil, err
		}
		text = b
	default:
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if text, err = io.ReadAll(io.LimitReader(f, maxTokenFile+1)); err != nil {
			return nil, err
		}
	}
	defer clear(text)
	if len(text) > maxTokenFile {
		return nil, usageErrorf("%s is larger than %d bytes", sourceName(path), maxTokenFile)
	}
	return parseShares(text, sourceName(path))
}

// parseShares parses JSON lines of api.Share.
func parseShares(text []byte, from string) ([]api.Share, error) {
	var shares []api.Share
	sc := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var s api.Share
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil || s.Index < 1 || s.Content == "" {
			// The decoder's error may quote the input: say nothing of it.
			return nil, usageErrorf(`%s line %d is not a share: want {"index":N,"content":"..."} as 'kmsctl sys init' prints it`, from, n)
		}
		shares = append(shares, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(shares) == 0 {
		return nil, usageErrorf("%s holds no share", from)
	}
	return shares, nil
}

func runSysRotateRoot(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	if len(args) > 0 {
		return usageErrorf("sys rotate-root takes no arguments")
	}
	cl, err := nativeClient(c, o, credAdmin)
	if err != nil {
		return err
	}
	if o.set["timeout"] {
		var cancel context.CancelFunc
		ctx, cancel = withTimeout(ctx, o)
		defer cancel()
	}
	r, err := cl.RotateRoot(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (the rotation goes on, or resumes at the next 'kmsctl sys rotate-root' or start)", err)
	}
	if err != nil {
		return err
	}
	if o.native.json {
		return printJSON(c.stdout, r)
	}
	resumed := ""
	if r.Resumed {
		resumed = ", finishing a rotation in progress"
	}
	_, err = fmt.Fprintf(c.stdout, "root key rotated from version %d to %d: %d key versions re-wrapped%s\n",
		r.From, r.To, r.Rewrapped, resumed)
	return err
}
