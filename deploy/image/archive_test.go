// Package image_test inspects the OCI archives that scripts/build-image.sh
// writes: index.json → manifest → config (user, ports, entrypoint), and the
// layer's files (the programs are there, no shell is).
//
// The archives come from $KMS_IMAGE_ARCHIVE and $KMS_MARIADB_IMAGE_ARCHIVE,
// else from bin/ at the top of the repository. A missing kms archive is
// built into a temporary directory (skipped with -short); a missing MariaDB
// archive skips its test, since it needs Debian's mariadb-server.
package image_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		User         string
		ExposedPorts map[string]struct{}
		Env          []string
		Entrypoint   []string
		WorkingDir   string
		Volumes      map[string]struct{}
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// image is an archive read into memory.
type image struct {
	ref    string
	config imageConfig
	files  map[string]*tar.Header // layer entries by path, without leading "/"
}

func TestKMSImage(t *testing.T) {
	img := readImage(t, kmsArchive(t))
	c := img.config.Config
	if img.config.OS != "linux" || img.config.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", img.config.OS, img.config.Architecture)
	}
	if c.User != "65532:65532" {
		t.Errorf("User %q, want 65532:65532 (non-root)", c.User)
	}
	if _, ok := c.ExposedPorts["9876/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("ExposedPorts %v, want only 9876/tcp", c.ExposedPorts)
	}
	if !slices.Equal(c.Entrypoint, []string{"/kmsd"}) {
		t.Errorf("Entrypoint %q, want [/kmsd]", c.Entrypoint)
	}
	if c.WorkingDir == "" {
		t.Error("no WorkingDir")
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("Volumes %v, want /data", c.Volumes)
	}
	if !slices.Contains(c.Env, "KMS_DATA_DIR=/data") {
		t.Errorf("Env %q lacks KMS_DATA_DIR=/data", c.Env)
	}
	for _, f := range []string{"kmsd", "kmsctl"} {
		h := img.files[f]
		if h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 || h.Uid != 0 {
			t.Errorf("/%s: want a root-owned executable, got %+v", f, h)
		}
	}
	for _, f := range []string{"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt"} {
		if img.files[f] == nil {
			t.Errorf("/%s missing", f)
		}
	}
	if h := img.files["data"]; h == nil || h.Typeflag != tar.TypeDir || h.Uid != 65532 || h.Mode&0o777 != 0o700 {
		t.Errorf("/data: want a 0700 directory owned by 65532, got %+v", h)
	}
	if h := img.files["tmp"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp: want mode 1777, got %+v", h)
	}
	img.checkNoShell(t)
	img.checkNothingWritable(t, "data", "tmp")
}

func TestMariaDBImage(t *testing.T) {
	path := archivePath("KMS_MARIADB_IMAGE_ARCHIVE", "kms-mariadb-image.tar")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not found: run scripts/build-image.sh mariadb", path)
	}
	img := readImage(t, path)
	c := img.config.Config
	if c.User != "65532:65532" {
		t.Errorf("User %q, want 65532:65532", c.User)
	}
	if _, ok := c.ExposedPorts["3306/tcp"]; !ok {
		t.Errorf("ExposedPorts %v, want 3306/tcp", c.ExposedPorts)
	}
	if !slices.Equal(c.Entrypoint, []string{"/mariadb-init"}) {
		t.Errorf("Entrypoint %q, want [/mariadb-init]", c.Entrypoint)
	}
	for _, f := range []string{"mariadb-init", "usr/sbin/mariadbd", "lib64/ld-linux-x86-64.so.2",
		"usr/share/mysql/mysql_system_tables.sql", "usr/share/mysql/english/errmsg.sys"} {
		if img.files[f] == nil {
			t.Errorf("/%s missing", f)
		}
	}
	if h := img.files["var/lib/mysql"]; h == nil || h.Uid != 65532 {
		t.Errorf("/var/lib/mysql: want a directory owned by 65532, got %+v", h)
	}
	img.checkNoShell(t)
	img.checkNothingWritable(t, "var/lib/mysql", "run/mysqld", "tmp")
}

func (img *image) checkNoShell(t *testing.T) {
	t.Helper()
	for _, sh := range []string{"bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox", "bin/dash"} {
		if img.files[sh] != nil {
			t.Errorf("image %s has a shell: /%s", img.ref, sh)
		}
	}
}

// checkNothingWritable: only the listed directories belong to the service
// user or are world-writable; programs and libraries belong to root.
func (img *image) checkNothingWritable(t *testing.T, allowed ...string) {
	t.Helper()
	for name, h := range img.files {
		if slices.Contains(allowed, name) {
			continue
		}
		if h.Uid != 0 || h.Mode&0o022 != 0 {
			t.Errorf("/%s is writable by non-root (uid %d, mode %o)", name, h.Uid, h.Mode)
		}
	}
}

func archivePath(env, name string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	return filepath.Join("..", "..", "bin", name)
}

// kmsArchive returns the kms image archive, building it if needed.
func kmsArchive(t *testing.T) string {
	path := archivePath("KMS_IMAGE_ARCHIVE", "kms-image.tar")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if testing.Short() {
		t.Skipf("%s not found and -short: run scripts/build-image.sh", path)
	}
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join("..", "..", "scripts", "build-image.sh"))
	cmd.Env = append(os.Environ(), "OUT_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, out)
	}
	return filepath.Join(dir, "kms-image.tar")
}

// readImage follows index.json to the manifest, the config and the layer,
// checking every digest on the way.
func readImage(t *testing.T, path string) *image {
	t.Helper()
	blobs := readTar(t, path)
	var layout struct {
		ImageLayoutVersion string `json:"imageLayoutVersion"`
	}
	decode(t, blobs["oci-layout"], &layout)
	if layout.ImageLayoutVersion != "1.0.0" {
		t.Fatalf("oci-layout: version %q", layout.ImageLayoutVersion)
	}
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	decode(t, blobs["index.json"], &index)
	if len(index.Manifests) == 0 {
		t.Fatal("index.json lists no manifest")
	}
	md := index.Manifests[0]
	img := &image{ref: md.Annotations["io.containerd.image.name"], files: map[string]*tar.Header{}}
	if img.ref == "" {
		t.Error("index.json: no io.containerd.image.name annotation (ctr import would not name the image)")
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	decode(t, blob(t, blobs, md), &manifest)
	decode(t, blob(t, blobs, manifest.Config), &img.config)
	if len(manifest.Layers) != 1 || len(img.config.RootFS.DiffIDs) != 1 {
		t.Fatalf("want one layer, got %d (diff_ids %d)", len(manifest.Layers), len(img.config.RootFS.DiffIDs))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(t, blobs, manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest(layer); got != img.config.RootFS.DiffIDs[0] {
		t.Errorf("diff_id %s, uncompressed layer is %s", img.config.RootFS.DiffIDs[0], got)
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		img.files[strings.Trim(h.Name, "/")] = h
	}
	return img
}

func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimPrefix(h.Name, "./")] = b
		}
	}
}

func blob(t *testing.T, blobs map[string][]byte, d descriptor) []byte {
	t.Helper()
	b, ok := blobs["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
	if !ok {
		t.Fatalf("blob %s missing", d.Digest)
	}
	if digest(b) != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: content does not match its descriptor", d.Digest)
	}
	return b
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
