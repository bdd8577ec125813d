// Command mkoci writes a single-layer, base-less OCI image archive without a
// container engine: a tar file holding an OCI image layout (oci-layout,
// index.json, blobs/sha256/...) plus a Docker-style manifest.json, so that
// `ctr images import`, `docker load` (Docker 25+ reads the OCI index; older
// versions read manifest.json) and `podman load` all accept it.
//
// The layer is built from explicit entries, never from a directory walk, so
// the image holds exactly what the command line lists, with fixed owners,
// modes and timestamps: the same inputs give the same image digest.
//
//	mkoci -o image.tar -ref ghcr.io/ppmlkms/kms:0.1.0 \
//	  -entrypoint '["/kmsd"]' -user 65532:65532 -port 9876/tcp \
//	  -file /kmsd=bin/kmsd:0755 -dir /data:0700:65532:65532
//
// Parent directories of every entry are added as root-owned 0755
// directories. Files are always owned by root (0:0), so a non-root process
// cannot change the programs it runs.
package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkoci:", err)
		os.Exit(1)
	}
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(args []string) error {
	var spec Spec
	var refs, envs, ports, volumes, labels, files, dirs listFlag
	var entrypoint, cmd, created string
	fs := flag.NewFlagSet("mkoci", flag.ContinueOnError)
	out := fs.String("o", "", "output archive (required)")
	fs.Var(&refs, "ref", "image reference, e.g. ghcr.io/ppmlkms/kms:0.1.0 (repeatable; at least one)")
	fs.StringVar(&entrypoint, "entrypoint", "", `entrypoint as a JSON array, e.g. '["/kmsd"]'`)
	fs.StringVar(&cmd, "cmd", "", "default arguments as a JSON array")
	fs.StringVar(&spec.Config.User, "user", "", "user[:group] the container runs as, e.g. 65532:65532")
	fs.StringVar(&spec.Config.WorkingDir, "workdir", "/", "working directory")
	fs.StringVar(&spec.Arch, "arch", "amd64", "architecture of the binaries")
	fs.StringVar(&created, "created", "", "creation time, RFC 3339 (default: $SOURCE_DATE_EPOCH, else 1970-01-01)")
	fs.Var(&envs, "env", "environment variable NAME=VALUE (repeatable)")
	fs.Var(&ports, "port", "exposed port, e.g. 9876/tcp (repeatable)")
	fs.Var(&volumes, "volume", "volume mount point (repeatable)")
	fs.Var(&labels, "label", "label KEY=VALUE (repeatable)")
	fs.Var(&files, "file", "file DST=SRC[:MODE] (repeatable; MODE octal, default: the source's permissions)")
	fs.Var(&dirs, "dir", "directory DST[:MODE[:UID:GID]] (repeatable; default 0755 owned by 0:0)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || len(refs) == 0 || fs.NArg() > 0 {
		return fmt.Errorf("usage: mkoci -o OUT.tar -ref NAME:TAG [options] (see -h)")
	}
	spec.Refs = refs
	spec.Config.Env = envs
	if err := parseJSONList(entrypoint, &spec.Config.Entrypoint); err != nil {
		return fmt.Errorf("-entrypoint: %w", err)
	}
	if err := parseJSONList(cmd, &spec.Config.Cmd); err != nil {
		return fmt.Errorf("-cmd: %w", err)
	}
	var err error
	if spec.Created, err = creationTime(created); err != nil {
		return err
	}
	spec.Config.ExposedPorts = set(ports)
	spec.Config.Volumes = set(volumes)
	if spec.Config.Labels, err = keyValues(labels); err != nil {
		return fmt.Errorf("-label: %w", err)
	}
	for _, f := range files {
		e, err := parseFile(f)
		if err != nil {
			return fmt.Errorf("-file %s: %w", f, err)
		}
		spec.Entries = append(spec.Entries, e)
	}
	for _, d := range dirs {
		e, err := parseDir(d)
		if err != nil {
			return fmt.Errorf("-dir %s: %w", d, err)
		}
		spec.Entries = append(spec.Entries, e)
	}
	digest, err := spec.Write(*out)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", *out, digest)
	return nil
}

func creationTime(s string) (time.Time, error) {
	if s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return t, fmt.Errorf("-created: %w", err)
		}
		return t.UTC(), nil
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Unix(0, 0).UTC(), nil
}

// parseFile parses DST=SRC[:MODE].
func parseFile(s string) (Entry, error) {
	dst, src, ok := strings.Cut(s, "=")
	if !ok || dst == "" || src == "" {
		return Entry{}, fmt.Errorf("want DST=SRC[:MODE]")
	}
	e := Entry{Path: dst, Type: tar.TypeReg, Source: src, Mode: -1}
	if i := strings.LastIndex(src, ":"); i >= 0 {
		m, err := strconv.ParseInt(src[i+1:], 8, 32)
		if err != nil {
			return Entry{}, fmt.Errorf("mode %q: want octal", src[i+1:])
		}
		e.Source, e.Mode = src[:i], m
	}
	return e, nil
}

// parseDir parses DST[:MODE[:UID:GID]].
func parseDir(s string) (Entry, error) {
	parts := strings.Split(s, ":")
	e := Entry{Path: parts[0], Type: tar.TypeDir, Mode: 0o755}
	if len(parts) != 1 && len(parts) != 2 && len(parts) != 4 {
		return Entry{}, fmt.Errorf("want DST[:MODE[:UID:GID]]")
	}
	var err error
	if len(parts) >= 2 {
		if e.Mode, err = strconv.ParseInt(parts[1], 8, 32); err != nil {
			return Entry{}, fmt.Errorf("mode %q: want octal", parts[1])
		}
	}
	if len(parts) == 4 {
		if e.UID, err = strconv.Atoi(parts[2]); err != nil {
			return Entry{}, fmt.Errorf("uid %q: %w", parts[2], err)
		}
		if e.GID, err = strconv.Atoi(parts[3]); err != nil {
			return Entry{}, fmt.Errorf("gid %q: %w", parts[3], err)
		}
	}
	return e, nil
}

func set(keys []string) map[string]struct{} {
	if len(keys) == 0 {
		return nil
	}
	m := map[string]struct{}{}
	for _, k := range keys {
		m[k] = struct{}{}
	}
	return m
}

func keyValues(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}
