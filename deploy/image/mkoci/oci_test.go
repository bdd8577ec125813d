package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testSpec(t *testing.T) *Spec {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Spec{
		Refs: []string{"example.test/a/b:1.0"}, Arch: "amd64", Created: time.Unix(0, 0).UTC(),
		Config: ImageConfig{User: "65532:65532", Entrypoint: []string{"/usr/bin/prog"}},
		Entries: []Entry{
			{Path: "/usr/bin/prog", Type: tar.TypeReg, Source: bin, Mode: -1},
			{Path: "/data", Type: tar.TypeDir, Mode: 0o700, UID: 65532, GID: 65532},
		},
	}
}

func TestWriteIsReproducible(t *testing.T) {
	dir := t.TempDir()
	s := testSpec(t)
	d1, err := s.Write(filepath.Join(dir, "1.tar"))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := s.Write(filepath.Join(dir, "2.tar"))
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(filepath.Join(dir, "1.tar"))
	b2, _ := os.ReadFile(filepath.Join(dir, "2.tar"))
	if d1 != d2 || !bytes.Equal(b1, b2) {
		t.Errorf("two writes differ: %s %s", d1, d2)
	}
}

func TestLayerEntries(t *testing.T) {
	s := testSpec(t)
	layer, err := s.layer()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name)
		if h.Name == "usr/bin/prog" && (h.Uid != 0 || h.Mode != 0o755) {
			t.Errorf("prog: uid %d mode %o, want root 0755", h.Uid, h.Mode)
		}
		if h.Name == "data/" && (h.Uid != 65532 || h.Mode != 0o700) {
			t.Errorf("data: uid %d mode %o", h.Uid, h.Mode)
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: mtime %v", h.Name, h.ModTime)
		}
	}
	want := []string{"data/", "usr/", "usr/bin/", "usr/bin/prog"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("entries %q, want %q (sorted, parents added)", got, want)
	}
}

func TestArchiveLayout(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img.tar")
	if _, err := testSpec(t).Write(out); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(out)
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	for _, name := range []string{"oci-layout", "index.json", "manifest.json"} {
		if files[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	if got := index.Manifests[0].Annotations["io.containerd.image.name"]; got != "example.test/a/b:1.0" {
		t.Errorf("image name annotation %q", got)
	}
	if got := index.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != "1.0" {
		t.Errorf("ref.name annotation %q", got)
	}
	var manifest struct {
		Layers []descriptor `json:"layers"`
	}
	json.Unmarshal(files[blobPath(index.Manifests[0].Digest)], &manifest)
	if len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %d layers", len(manifest.Layers))
	}
	if _, err := gzip.NewReader(bytes.NewReader(files[blobPath(manifest.Layers[0].Digest)])); err != nil {
		t.Errorf("layer is not gzip: %v", err)
	}
}

func TestBadEntries(t *testing.T) {
	for name, e := range map[string]Entry{
		"root":     {Path: "/", Type: tar.TypeDir, Mode: 0o755},
		"dotdot":   {Path: "/a/../../etc", Type: tar.TypeDir, Mode: 0o755},
		"missing":  {Path: "/x", Type: tar.TypeReg, Source: "/nonexistent/file", Mode: -1},
		"not file": {Path: "/x", Type: tar.TypeReg, Source: os.TempDir(), Mode: -1},
	} {
		t.Run(name, func(t *testing.T) {
			s := &Spec{Entries: []Entry{e}}
			if _, err := s.layer(); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	e, err := parseFile("/kmsd=bin/kmsd:0750")
	if err != nil || e.Path != "/kmsd" || e.Source != "bin/kmsd" || e.Mode != 0o750 {
		t.Errorf("parseFile: %+v %v", e, err)
	}
	e, err = parseFile("/etc/passwd=/tmp/passwd")
	if err != nil || e.Source != "/tmp/passwd" || e.Mode != -1 {
		t.Errorf("parseFile without mode: %+v %v", e, err)
	}
	e, err = parseDir("/data:0700:65532:65532")
	if err != nil || e.Mode != 0o700 || e.UID != 65532 || e.GID != 65532 {
		t.Errorf("parseDir: %+v %v", e, err)
	}
	for _, bad := range []string{"/data:0700:1", "/data:rwx"} {
		if _, err := parseDir(bad); err == nil {
			t.Errorf("parseDir(%q): no error", bad)
		}
	}
	if _, err := parseFile("nosource"); err == nil {
		t.Error("parseFile without =: no error")
	}
	if tagOf("localhost:5000/a/b") != "latest" || tagOf("a/b:v1") != "v1" {
		t.Error("tagOf")
	}
}
