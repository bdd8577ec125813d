package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// input is what encrypt or decrypt reads: a file, a directory or stdin.
type input struct {
	path string
	dir  bool
	f    *os.File      // nil for a directory or stdin
	br   *bufio.Reader // over f or stdin, so decrypt can sniff the format
	size int64         // -1 if unknown
	prog *progress
}

func openInput(c *cli, o *cmdOpts, path string) (*input, error) {
	in := &input{path: path, size: -1}
	if path == "-" {
		if err := o.takeStdin("INPUT -"); err != nil {
			return nil, err
		}
		in.br = bufio.NewReaderSize(c.stdin, 64<<10)
		return in, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		in.dir = true
		return in, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file or directory", path)
	}
	if in.f, err = os.Open(path); err != nil {
		return nil, err
	}
	in.size = fi.Size()
	in.br = bufio.NewReaderSize(in.f, 64<<10)
	return in, nil
}

// Close closes the file and ends the progress line.
func (in *input) Close() error {
	if in.prog != nil {
		in.prog.finish()
	}
	if in.f != nil {
		return in.f.Close()
	}
	return nil
}

// reader returns the input as a reader that stops when ctx is cancelled
// (so an interrupted run removes its temporary output) and draws a progress
// bar on a terminal stderr.
func (in *input) reader(ctx context.Context, c *cli, verb string) io.Reader {
	r := &ctxReader{ctx: ctx, r: in.br}
	if c.progress {
		label := verb + " " + in.path
		if in.path == "-" {
			label = verb + " stdin"
		}
		in.prog = newProgress(c.stderr, label, in.size)
		r.prog = in.prog
	}
	return r
}

// isStream reports whether the input is in the stream format: a file by
// its magic, a directory by its parts' extension.
func (in *input) isStream() (bool, error) {
	if in.dir {
		if _, err := os.Stat(filepath.Join(in.path, ".meta")); err == nil {
			return false, nil
		}
		cbc, err := listParts(in.path, extBigDL)
		if err != nil || len(cbc) > 0 {
			return false, err
		}
		kms, err := listParts(in.path, extStream)
		return len(kms) > 0, err
	}
	b, err := in.br.Peek(sniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return false, err
	}
	return isStreamHeader(b), nil
}

type ctxReader struct {
	ctx  context.Context
	r    io.Reader
	prog *progress
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("interrupted: %w", err)
	}
	n, err := r.r.Read(p)
	if r.prog != nil {
		r.prog.add(n)
	}
	return n, err
}

// outputPath returns where to write: -o, else "-" for stdin input, else
// derive(INPUT). It refuses an existing output without --force.
func outputPath(o *cmdOpts, in string, dir bool, derive func(string) (string, bool)) (string, error) {
	out := o.output
	switch {
	case out == "-" && dir:
		return "", usageErrorf("a directory cannot be written to stdout; give --output DIR")
	case out != "":
	case in == "-":
		out = "-"
	case dir:
		return "", usageErrorf("give --output DIR for a directory")
	default:
		var ok bool
		if out, ok = derive(strings.TrimSuffix(in, string(filepath.Separator))); !ok {
			return "", usageErrorf("cannot name the output after %s (no .cbc or .kms extension); give --output", in)
		}
	}
	if out == "-" {
		return out, nil
	}
	if filepath.Clean(out) == filepath.Clean(in) {
		return "", usageErrorf("output and input are the same path")
	}
	if _, err := os.Lstat(out); err == nil && !o.force {
		return "", fmt.Errorf("%s exists; use --force to replace it", out)
	}
	return out, nil
}

// writeOutput writes one file's result. For a path, toFile writes it
// atomically. For stdout, ciphertext streams through toWriter, but
// plaintext is first decrypted into a private temporary file so that
// nothing unverified reaches stdout.
func writeOutput(c *cli, out string, r io.Reader, plaintext bool,
	toFile func(dst string, r io.Reader) error, toWriter func(w io.Writer, r io.Reader) error) error {
	if out != "-" {
		return toFile(out, r)
	}
	if !plaintext {
		return toWriter(c.stdout, r)
	}
	dir, err := os.MkdirTemp("", "kmsctl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "plaintext")
	if err := toFile(tmp, r); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(c.stdout, f)
	return err
}

// writeDir builds a directory in a temporary sibling of out with fill and
// renames it to out only if fill succeeds, so a failure leaves nothing.
// With force, an existing out is replaced. The ppml directory helpers take
// no context: an interruption (ctx cancelled) is noticed only when fill
// returns, and the result is then discarded.
func writeDir(ctx context.Context, out string, force bool, mode os.FileMode, fill func(tmp string) error) (err error) {
	out = filepath.Clean(out)
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err = fill(tmp); err != nil {
		return err
	}
	if err = ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	if err = os.Chmod(tmp, mode); err != nil {
		return err
	}
	if _, statErr := os.Lstat(out); statErr == nil {
		if !force {
			return fmt.Errorf("%s exists; use --force to replace it", out)
		}
		old := tmp + ".old"
		if err = os.Rename(out, old); err != nil {
			return err
		}
		if err = os.Rename(tmp, out); err != nil {
			os.Rename(old, out)
			return err
		}
		return os.RemoveAll(old)
	}
	return os.Rename(tmp, out)
}

// listParts returns the names of the regular files in dir that end in
// suffix and that Hadoop does not treat as hidden ('.' or '_' first),
// sorted.
func listParts(dir, suffix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || !strings.HasSuffix(name, suffix) {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name)) // follows symbolic links
		if err != nil {
			return nil, err
		}
		if fi.Mode().IsRegular() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// eachFile calls fn with every part of dir (see listParts), opened and
// wrapped to stop when ctx is cancelled; it fails if there is none.
func eachFile(ctx context.Context, dir, suffix string, fn func(name string, r io.Reader) error) error {
	names, err := listParts(dir, suffix)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("no files to process in %s", dir)
	}
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = fn(name, &ctxReader{ctx: ctx, r: f})
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func joinPath(dir, name string) string { return filepath.Join(dir, name) }
