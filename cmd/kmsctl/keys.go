package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ppmlkms/kms/client"
)

var keyCommands = []*command{
	{
		name: "user create", args: "[NAME]", short: "create a user", kms: true,
		long: "Creates the user NAME (default: --user) with a token read like every token:\n" +
			"--token-file, KMS_TOKEN, the config file, or a prompt that asks twice.\n" +
			"Pick a long random token, e.g. from 'head -c 32 /dev/urandom | base64'.",
		run: runUserCreate,
	},
	{
		name: "primary-key create", args: "NAME", short: "create a primary key", kms: true,
		long: "Creates the AES-256 primary key NAME for the user. It never leaves the server.",
		run:  runPrimaryKeyCreate,
	},
	{
		name: "data-key create", args: "NAME", short: "create a data key under a primary key", kms: true,
		flags: primaryKeyFlag, run: runDataKeyCreate,
	},
	{
		name: "data-key get", args: "NAME", short: "print a data key (base64)", kms: true,
		long: "Prints the data key's 24 base64 characters and a newline, or writes them to\n" +
			"--output (mode 0600) for offline use with 'encrypt --key-file'.",
		flags: func(fs *flag.FlagSet, o *cmdOpts) {
			primaryKeyFlag(fs, o)
			fs.StringVar(&o.output, "output", "", "write the key to `file` (mode 0600) instead of stdout")
			fs.StringVar(&o.output, "o", "", "short for --output `path`")
			fs.BoolVar(&o.force, "force", false, "overwrite --output if it exists")
		},
		run: runDataKeyGet,
	},
	{
		name: "status", short: "check that kmsd answers and is ready", kms: true,
		long: "Exits with 0 when the server answers and is ready, 6 when it cannot be\n" +
			"reached or is not ready.",
		run: runStatus,
	},
}

func primaryKeyFlag(fs *flag.FlagSet, o *cmdOpts) {
	fs.StringVar(&o.primaryKey, "primary-key", "", "primary key `name`")
}

// session is what a KMS command needs: a client and the user's
// credentials.
type session struct {
	c           *client.Client
	user, token string
	timeout     func(context.Context) (context.Context, context.CancelFunc)
}

// connect resolves the settings and the token (when needUser) and builds a
// client.
func connect(c *cli, o *cmdOpts, needUser bool) (*session, error) {
	s, err := o.resolve(c)
	if err != nil {
		return nil, err
	}
	ses := &session{timeout: func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, o.timeout)
	}}
	if needUser {
		if ses.user, err = s.needUser(); err != nil {
			return nil, err
		}
		if ses.token, err = o.token(c, s, fmt.Sprintf("Token for user %s", ses.user), false); err != nil {
			return nil, err
		}
	}
	ses.c, err = s.client(c)
	return ses, err
}

func oneName(args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", usageErrorf("want exactly one %s argument, got %d", what, len(args))
	}
	return args[0], nil
}

func runUserCreate(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	s, err := o.resolve(c)
	if err != nil {
		return err
	}
	if len(args) > 1 {
		return usageErrorf("want at most one NAME argument")
	}
	if len(args) == 1 {
		s.user = args[0]
	}
	user, err := s.needUser()
	if err != nil {
		return err
	}
	token, err := o.token(c, s, fmt.Sprintf("New token for user %s", user), true)
	if err != nil {
		return err
	}
	cl, err := s.client(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := cl.CreateUser(ctx, user, token); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "user %q created\n", user)
	return nil
}

func runPrimaryKeyCreate(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	name, err := oneName(args, "NAME")
	if err != nil {
		return err
	}
	ses, err := connect(c, o, true)
	if err != nil {
		return err
	}
	ctx, cancel := ses.timeout(ctx)
	defer cancel()
	if err := ses.c.CreatePrimaryKey(ctx, ses.user, ses.token, name); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "primary key %q created\n", name)
	return nil
}

func needPrimaryKey(o *cmdOpts) error {
	if o.primaryKey == "" {
		return usageErrorf("--primary-key is required")
	}
	return nil
}

func runDataKeyCreate(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	name, err := oneName(args, "NAME")
	if err != nil {
		return err
	}
	if err := needPrimaryKey(o); err != nil {
		return err
	}
	ses, err := connect(c, o, true)
	if err != nil {
		return err
	}
	ctx, cancel := ses.timeout(ctx)
	defer cancel()
	if err := ses.c.CreateDataKey(ctx, ses.user, ses.token, o.primaryKey, name); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "data key %q created under primary key %q\n", name, o.primaryKey)
	return nil
}

func runDataKeyGet(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	name, err := oneName(args, "NAME")
	if err != nil {
		return err
	}
	if err := needPrimaryKey(o); err != nil {
		return err
	}
	if o.output != "" && !o.force {
		if _, err := os.Lstat(o.output); err == nil {
			return fmt.Errorf("%s exists; use --force to overwrite it", o.output)
		}
	}
	ses, err := connect(c, o, true)
	if err != nil {
		return err
	}
	ctx, cancel := ses.timeout(ctx)
	defer cancel()
	key, err := ses.c.DataKeyString(ctx, ses.user, ses.token, o.primaryKey, name)
	if err != nil {
		return err
	}
	if o.output == "" || o.output == "-" {
		_, err = fmt.Fprintln(c.stdout, key)
		return err
	}
	return writeFileAtomic(o.output, []byte(key+"\n"), 0o600)
}

// writeFileAtomic writes a small file through a temporary file and rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func runStatus(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	if len(args) > 0 {
		return usageErrorf("status takes no arguments")
	}
	ses, err := connect(c, o, false)
	if err != nil {
		return err
	}
	ctx, cancel := ses.timeout(ctx)
	defer cancel()
	st, err := ses.c.Status(ctx)
	if st != nil {
		fmt.Fprintf(c.stdout, "server:  %s\nwelcome: %s\nready:   %v\nlatency: %v\n",
			ses.c.URL(), st.Welcome, st.Ready, st.Latency.Round(10*time.Microsecond))
	}
	return err
}
