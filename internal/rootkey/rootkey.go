// Package rootkey loads the root key that seals every primary key.
//
// A [Source] yields the 32 root key bytes. Two sources exist today: a key
// file in the data directory, created with mode 0600 on first start, and a
// base64 value (BigDL's ROOT_KEY) read from an environment variable or a
// file such as a mounted Kubernetes Secret. Shamir unsealing arrives later
// as another Source.
package rootkey

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// Len is the size of a root key in bytes.
const Len = 32

// Source yields the root key. Implementations return a fresh slice the
// caller may zero after use.
type Source interface {
	// RootKey returns the 32-byte root key.
	RootKey(ctx context.Context) ([]byte, error)
	// Describe says where the key comes from, for logs; never the key.
	Describe() string
}

// File is a root key kept as base64 text in a file. If the file does not
// exist and Create is set, a random key is generated and written with mode
// 0600 (temp file, fsync, rename), and a warning is logged.
type File struct {
	Path   string
	Create bool
	Logger *slog.Logger
}

var _ Source = (*File)(nil)

// Describe implements Source.
func (f *File) Describe() string { return "key file " + f.Path }

// RootKey implements Source.
func (f *File) RootKey(ctx context.Context) ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) && f.Create {
		return f.create()
	}
	if err != nil {
		return nil, fmt.Errorf("read root key: %w", err)
	}
	defer clear(b)
	if fi, err := os.Stat(f.Path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		f.logger().Warn("root key file is readable by group or others; chmod 600 it", "path", f.Path, "mode", fi.Mode().Perm().String())
	}
	return Decode(b)
}

func (f *File) logger() *slog.Logger {
	if f.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Logger
}

func (f *File) create() ([]byte, error) {
	key := make([]byte, Len)
	rand.Read(key)
	text := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	defer clear(text)
	if err := writeFileAtomic(f.Path, text, 0o600); err != nil {
		return nil, fmt.Errorf("create root key: %w", err)
	}
	f.logger().Warn("GENERATED A NEW ROOT KEY: every key this server stores is sealed by it. "+
		"Back up this file and keep it secret; losing it loses every key.", "path", f.Path)
	return key, nil
}

// Value is a base64 root key taken from an environment variable (Env) or
// from a file (Path), as BigDL's ROOT_KEY or a mounted Secret.
type Value struct {
	Env  string
	Path string
	// Getenv looks up Env; os.Getenv when nil.
	Getenv func(string) string
}

var _ Source = (*Value)(nil)

// Describe implements Source.
func (v *Value) Describe() string {
	if v.Env != "" {
		return "environment variable " + v.Env
	}
	return "file " + v.Path
}

// RootKey implements Source.
func (v *Value) RootKey(ctx context.Context) ([]byte, error) {
	if v.Env != "" {
		getenv := v.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		s := getenv(v.Env)
		if s == "" {
			return nil, fmt.Errorf("root key: environment variable %s is not set", v.Env)
		}
		return Decode([]byte(s))
	}
	b, err := os.ReadFile(v.Path)
	if err != nil {
		return nil, fmt.Errorf("read root key: %w", err)
	}
	defer clear(b)
	return Decode(b)
}

// Decode parses a root key given as standard base64 text (surrounding white
// space ignored). The error never contains the input.
func Decode(text []byte) ([]byte, error) {
	s := bytes.TrimSpace(text)
	key := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(key, s)
	if err != nil {
		clear(key)
		return nil, errors.New("root key is not valid base64")
	}
	if n != Len {
		clear(key)
		return nil, fmt.Errorf("root key must decode to %d bytes, got %d", Len, n)
	}
	return key[:n], nil
}

// writeFileAtomic writes data to path via a temporary file in the same
// directory, fsyncs it and renames it into place, so that a crash leaves
// either no file or the whole file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link, not rename: never replace a key file that appeared meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
