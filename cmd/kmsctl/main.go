// Command kmsctl is the command-line client of kmsd: it creates users and
// keys through the BigDL KMS API, and encrypts and decrypts files and Spark
// output directories in the BigDL PPML formats and in our own stream
// format. It talks to the server only through package client. Its secrets
// commands make the Kubernetes Secrets of a PPML cluster (keystores,
// passwords, root key) offline, with package ppmlsecrets.
//
// See docs/kmsctl.md, or run "kmsctl help".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/term"
)

// Exit codes, documented in "kmsctl help" and docs/kmsctl.md. Scripts rely
// on them: never renumber.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitExists      = 4
	exitAuth        = 5
	exitUnavailable = 6
	exitIntegrity   = 7
	exitDisabled    = 8
)

func main() {
	// The first SIGINT or SIGTERM cancels ctx, so that work in progress stops
	// and removes its temporary output; a second one kills at once.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := newCLI().run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// cli is one invocation of kmsctl: its standard streams and environment.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// stdinTerminal is the descriptor of stdin if it is a terminal (for the
	// token prompt), or -1.
	stdinTerminal int
	// progress reports whether stderr is a terminal that gets progress bars.
	progress bool
}

func newCLI() *cli {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, stdinTerminal: -1}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		c.stdinTerminal = fd
	}
	c.progress = term.IsTerminal(int(os.Stderr.Fd()))
	return c
}

// command is one entry of the subcommand table.
type command struct {
	name  string // "data-key get"
	args  string // synopsis of the positional arguments
	short string // one line for the command list
	long  string // paragraph(s) for "kmsctl help <command>"
	// kms: the command talks to kmsd and takes the connection flags.
	kms   bool
	flags func(fs *flag.FlagSet, o *cmdOpts)
	run   func(ctx context.Context, c *cli, o *cmdOpts, args []string) error
}

// commands is the subcommand table, in help order.
var commands []*command

func init() {
	commands = append(commands, keyCommands...)
	commands = append(commands, cryptCommands...)
	commands = append(commands, nativeCommands()...)
	commands = append(commands, attestCommand())
	commands = append(commands, secretsCommands...)
	commands = append(commands, &command{
		name: "completion", args: "bash|zsh|fish", short: "print a shell completion script",
		long: "Prints a completion script. Load it with, e.g.:\n\n" +
			"  bash: source <(kmsctl completion bash)\n" +
			"  zsh:  source <(kmsctl completion zsh)   (in ~/.zshrc, after compinit)\n" +
			"  fish: kmsctl completion fish > ~/.config/fish/completions/kmsctl.fish",
		run: runCompletion,
	}, &command{
		name: "version", short: "print the version",
		run: func(_ context.Context, c *cli, _ *cmdOpts, args []string) error {
			if len(args) > 0 {
				return usageErrorf("version takes no arguments")
			}
			fmt.Fprintln(c.stdout, "kmsctl", versionString())
			return nil
		},
	})
}

// lookup finds the command named by the first one or two words of args and
// returns it with the remaining args.
func lookup(args []string) (*command, []string) {
	if len(args) >= 2 {
		for _, cmd := range commands {
			if cmd.name == args[0]+" "+args[1] {
				return cmd, args[2:]
			}
		}
	}
	if len(args) >= 1 {
		for _, cmd := range commands {
			if cmd.name == args[0] {
				return cmd, args[1:]
			}
		}
	}
	return nil, args
}

// run executes kmsctl with args (without the program name) and returns the
// exit code.
func (c *cli) run(ctx context.Context, args []string) int {
	err := c.dispatch(ctx, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitCode(err)
	if err != nil {
		fmt.Fprintf(c.stderr, "kmsctl: %v\n", err)
		if code == exitUsage {
			fmt.Fprintln(c.stderr, "Run 'kmsctl help' for usage.")
		}
	}
	return code
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	if err := refuseSecretFlags(args); err != nil {
		return err
	}
	o := newCmdOpts()
	global := newFlagSet("kmsctl", c)
	o.registerConnection(global)
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(c.stdout)
		}
		return flagError(err)
	}
	o.markSet(global)
	args = global.Args()
	if len(args) == 0 {
		c.usage(c.stderr)
		return usageErrorf("no command given")
	}
	if args[0] == "help" {
		return c.help(args[1:])
	}
	cmd, rest := lookup(args)
	if cmd == nil {
		if subs := subcommands()[args[0]]; len(subs) > 0 {
			return usageErrorf("%s needs a subcommand: %s", args[0], strings.Join(subs, ", "))
		}
		return usageErrorf("unknown command %q", strings.Join(args[:min(2, len(args))], " "))
	}
	fs := newFlagSet("kmsctl "+cmd.name, c)
	if cmd.kms {
		o.registerConnection(fs)
	}
	if cmd.flags != nil {
		cmd.flags(fs, o)
	}
	positional, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.commandUsage(c.stdout, cmd)
		}
		return flagError(err)
	}
	o.markSet(fs)
	return cmd.run(ctx, c, o, positional)
}

// newFlagSet returns a FlagSet that prints nothing itself: dispatch prints
// usage for -h and reports errors once, as usage errors.
func newFlagSet(name string, c *cli) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseInterleaved parses flags that come before, between or after the
// positional arguments ("kmsctl user create alice --token-file t"); "--"
// ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		// flag stops at the first non-flag, or just after "--".
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// secretFlags are flags that kmsctl refuses because their value would be a
// secret on the command line, with where the secret comes from instead.
var secretFlags = map[string]string{
	"token": "--token-file FILE, --token-file - (stdin), KMS_TOKEN, the config file or the interactive prompt",
	"password": "--password-file FILE, --password-file - (stdin), the interactive prompt, " +
		"or --random-password (secrets generate-keys)",
	"api-key": "--api-key-file FILE or --api-key-file - (stdin)",
	"admin-token": "--admin-token-file FILE, --admin-token-file - (stdin), KMS_ADMIN_TOKEN, KMS_ADMIN_TOKEN_FILE, " +
		"the config file or the interactive prompt",
}

// refuseSecretFlags rejects a token, password or api key given on the
// command line, where ps and the shell history would show it. The value is
// never repeated.
func refuseSecretFlags(args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if instead, ok := secretFlags[name]; ok && strings.HasPrefix(a, "-") {
			return usageErrorf("there is no --%s flag: a secret on the command line is visible to "+
				"other users (ps) and stays in shell history; use %s", name, instead)
		}
	}
	return nil
}

// help prints the general usage or one command's.
func (c *cli) help(args []string) error {
	if len(args) == 0 {
		c.usage(c.stdout)
		return nil
	}
	cmd, rest := lookup(args)
	if cmd == nil && len(args) == 1 && args[0] != "completion" && len(subcommands()[args[0]]) > 0 {
		c.groupUsage(c.stdout, args[0])
		return nil
	}
	if cmd == nil || len(rest) > 0 {
		return usageErrorf("no help for %q", strings.Join(args, " "))
	}
	c.commandUsage(c.stdout, cmd)
	return nil
}

// groupHelp introduces the commands that share a first word, for
// "kmsctl help <first word>".
var groupHelp = map[string]string{
	"key":   keyGroupHelp,
	"admin": adminGroupHelp,
	"sys":   sysGroupHelp,
	"secrets": "The secrets commands make the Kubernetes Secrets of a BigDL PPML cluster, in\n" +
		"place of generate-keys.sh, generate-password.sh and kubectl create secret:\n" +
		"manifests for kubectl apply -f, and the files inside them. They work offline\n" +
		"(no kmsd, openssl or keytool) and never replace a file without --force.\n" +
		"Passwords come from a file, stdin or a prompt, never from the command line.\n" +
		"See docs/secrets.md.",
}

// groupUsage lists the commands whose first word is first.
func (c *cli) groupUsage(w io.Writer, first string) {
	fmt.Fprintf(w, "Usage: kmsctl %s <command> [flags]\n\n", first)
	if h := groupHelp[first]; h != "" {
		fmt.Fprintf(w, "%s\n\n", h)
	}
	fmt.Fprintln(w, "Commands:")
	width := nameWidth()
	for _, cmd := range commands {
		if strings.HasPrefix(cmd.name, first+" ") {
			fmt.Fprintf(w, "  %-*s %s\n", width, cmd.name, cmd.short)
		}
	}
	fmt.Fprintf(w, "\nRun 'kmsctl help %s <command>' for its flags.\n", first)
}

// nameWidth is the width of the command column in help.
func nameWidth() int {
	width := len("help [command]")
	for _, cmd := range commands {
		width = max(width, len(cmd.name))
	}
	return width
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, `kmsctl is the command-line client of kmsd, the BigDL-compatible KMS.

Usage:
  kmsctl [connection flags] <command> [flags] [arguments]

Commands:
`)
	width := nameWidth()
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-*s %s\n", width, cmd.name, cmd.short)
	}
	fmt.Fprintf(w, "  %-*s %s\n", width, "help [command]", "show help")
	fmt.Fprint(w, `
Connection flags (commands that talk to kmsd):
`)
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	newCmdOpts().registerConnection(fs)
	printFlags(w, fs)
	fmt.Fprint(w, connectionHelp+exitHelp)
}

const connectionHelp = `
Settings come from, strongest first: flags, environment (KMS_SERVER, KMS_USER,
KMS_TOKEN, KMS_TOKEN_FILE, KMS_CACERT, KMS_INSECURE), the config file
(--config, default ~/.config/kmsctl/config.json), defaults. The token is never
a flag: it comes from --token-file FILE, --token-file - (stdin), KMS_TOKEN,
KMS_TOKEN_FILE, the config file, or a prompt without echo when stdin is a
terminal. Admin commands (and --admin or --owner) use KMS_ADMIN and the admin
token from --admin-token-file, KMS_ADMIN_TOKEN, KMS_ADMIN_TOKEN_FILE, the config
file's admin-token-file, or a prompt.
`

const exitHelp = `
Exit codes:
  0  success
  1  failure not listed below
  2  usage error (bad flags or arguments, missing token, unusable password)
  3  not found (user, primary key or data key)
  4  already exists (user, primary key or data key), or a conflicting
     concurrent change (two rotations of a key at once; re-read and retry)
  5  authentication failed (unknown user, wrong token, throttled), or not
     allowed (a user on an admin operation or on another owner's keys)
  6  server unavailable (cannot connect, not ready, or sealed)
  7  integrity failure: the input is not an intact encrypted file or
     ciphertext (bad tag, tampered, truncated, malformed, or the wrong key or
     encryption context)
  8  disabled: the primary key is disabled or scheduled for deletion, or
     the user is disabled
`

func (c *cli) commandUsage(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", strings.TrimSpace("kmsctl "+cmd.name+" [flags] "+cmd.args), upperFirst(cmd.short))
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.long)
	}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	o := newCmdOpts()
	if cmd.flags != nil {
		cmd.flags(fs, o)
	}
	if cmd.kms {
		o.registerConnection(fs)
	}
	if hasFlags(fs) {
		fmt.Fprintln(w, "\nFlags:")
		printFlags(w, fs)
	}
	if cmd.kms {
		fmt.Fprint(w, connectionHelp)
	}
}

// printFlags is flag.PrintDefaults with GNU-style "--name", and "-o" for
// one-letter flags.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		arg, usage := flag.UnquoteUsage(f)
		line := "  " + dash + f.Name
		if arg != "" {
			line += " " + arg
		}
		if f.DefValue != "" && f.DefValue != "false" && !strings.Contains(usage, "default") {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "%-26s %s\n", line, usage)
	})
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// commandNames returns the first words of all commands, sorted, for
// completion.
func commandNames() []string {
	seen := map[string]bool{"help": true}
	for _, cmd := range commands {
		first, _, _ := strings.Cut(cmd.name, " ")
		seen[first] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
