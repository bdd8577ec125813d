// Command vectors writes the frozen test vectors of the kms stream format
// to testdata/vectors. Run it with `go generate ./stream`.
//
// It builds every file with its own encoder, written from
// docs/spec/stream-format.md with the standard library only, so the vectors
// check package stream instead of echoing it. Each vector tests one
// scenario. Existing files are never changed: if a vector's bytes would
// differ from the committed file, the generator stops with an error, unless
// -force is given on purpose.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
)

type vector struct {
	name, expect, comment string
	key                   []byte
	plaintext             []byte // for success vectors
	file                  []byte
}

func main() {
	dir := flag.String("dir", "testdata/vectors", "output directory")
	force := flag.Bool("force", false, "overwrite vectors whose content changed (never do this for released vectors)")
	flag.Parse()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}
	var all []vector
	all = append(all, successVectors()...)
	all = append(all, parseFailureVectors()...)
	all = append(all, authFailureVectors()...)
	seen := map[string]bool{}
	for _, v := range all {
		if seen[v.name] {
			log.Fatalf("duplicate vector name %s", v.name)
		}
		seen[v.name] = true
		if err := write(*dir, v, *force); err != nil {
			log.Fatal(err)
		}
	}
}

func (v vector) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "expect: %s\n", v.expect)
	fmt.Fprintf(&b, "key: %s\n", hex.EncodeToString(v.key))
	if v.expect == "success" {
		fmt.Fprintf(&b, "plaintext sha256: %s\n", hex.EncodeToString(sha256Sum(v.plaintext)))
	}
	fmt.Fprintf(&b, "comment: %s\n\n", v.comment)
	enc := base64.StdEncoding.EncodeToString(v.file)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\n")
	return b.Bytes()
}

func write(dir string, v vector, force bool) error {
	path := filepath.Join(dir, v.name+".txt")
	data := v.encode()
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, data):
		return nil
	case err == nil && !force:
		return fmt.Errorf("%s: committed vector differs from what the generator makes now; vectors are frozen (use -force only for an unreleased vector)", path)
	case err != nil && !os.IsNotExist(err):
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
