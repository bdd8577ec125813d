package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// Media types of the OCI image specification.
const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Spec describes an image: its references, runtime configuration and the
// entries of its only layer.
type Spec struct {
	Refs    []string
	Arch    string
	Created time.Time
	Config  ImageConfig
	Entries []Entry
}

// ImageConfig is the "config" object of an OCI image configuration.
type ImageConfig struct {
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
}

// Entry is one file or directory of the layer. Mode -1 on a file means the
// source file's permission bits.
type Entry struct {
	Path     string
	Type     byte // tar.TypeReg or tar.TypeDir
	Source   string
	Mode     int64
	UID, GID int
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// Write writes the archive to out and returns the manifest digest.
func (s *Spec) Write(out string) (string, error) {
	layer, err := s.layer()
	if err != nil {
		return "", err
	}
	diffID := digestOf(layer)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // header has no name and a zero time
	zw.Write(layer)
	if err := zw.Close(); err != nil {
		return "", err
	}
	created := s.Created.Format(time.RFC3339)
	config, _ := json.Marshal(map[string]any{
		"created":      created,
		"architecture": s.Arch,
		"os":           "linux",
		"config":       s.Config,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history":      []map[string]string{{"created": created, "created_by": "mkoci", "comment": "base-less single layer"}},
	})
	layerDesc := descriptor{MediaType: mediaLayerGz, Digest: digestOf(gz.Bytes()), Size: int64(gz.Len())}
	configDesc := descriptor{MediaType: mediaConfig, Digest: digestOf(config), Size: int64(len(config))}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        configDesc,
		"layers":        []descriptor{layerDesc},
	})
	manifestDesc := descriptor{MediaType: mediaManifest, Digest: digestOf(manifest), Size: int64(len(manifest)),
		Platform: &platform{Architecture: s.Arch, OS: "linux"}}
	index := map[string]any{"schemaVersion": 2, "mediaType": mediaIndex, "manifests": []descriptor{}}
	var manifests []descriptor
	for _, ref := range s.Refs {
		d := manifestDesc
		d.Annotations = map[string]string{
			"io.containerd.image.name":          ref,
			"org.opencontainers.image.ref.name": tagOf(ref),
		}
		manifests = append(manifests, d)
	}
	index["manifests"] = manifests
	indexJSON, _ := json.Marshal(index)
	dockerJSON, _ := json.Marshal([]map[string]any{{
		"Config":   blobPath(configDesc.Digest),
		"RepoTags": s.Refs,
		"Layers":   []string{blobPath(layerDesc.Digest)},
	}})

	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(f)
	add := func(name string, b []byte) {
		if err == nil {
			err = writeTar(tw, &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b)), ModTime: s.Created}, bytes.NewReader(b))
		}
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: s.Created})
		}
	}
	blobs := map[string][]byte{configDesc.Digest: config, layerDesc.Digest: gz.Bytes(), manifestDesc.Digest: manifest}
	for _, d := range sortedKeys(blobs) {
		add(blobPath(d), blobs[d])
	}
	add("index.json", indexJSON)
	add("manifest.json", dockerJSON)
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return "", fmt.Errorf("write %s: %w", out, err)
	}
	return manifestDesc.Digest, nil
}

// layer returns the uncompressed layer tar: every entry and its parent
// directories, sorted by path.
func (s *Spec) layer() ([]byte, error) {
	entries := map[string]Entry{}
	for _, e := range s.Entries {
		p := path.Clean("/" + e.Path)
		if p == "/" || strings.Contains(e.Path, "..") {
			return nil, fmt.Errorf("bad path %q", e.Path)
		}
		e.Path = strings.TrimPrefix(p, "/")
		if old, dup := entries[e.Path]; dup && (old.Type != tar.TypeDir || e.Type != tar.TypeDir) {
			return nil, fmt.Errorf("%s listed twice", p)
		}
		entries[e.Path] = e
		for d := path.Dir(e.Path); d != "."; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = Entry{Path: d, Type: tar.TypeDir, Mode: 0o755}
			}
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range sortedKeys(entries) {
		e := entries[name]
		h := &tar.Header{Name: e.Path, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID, ModTime: s.Created, Format: tar.FormatPAX}
		if e.Type == tar.TypeDir {
			h.Name += "/"
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			continue
		}
		if err := addFile(tw, h, e.Source); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// addFile copies src (following symbolic links: shared libraries are
// usually links to a versioned file) into the layer as a regular file.
func addFile(tw *tar.Writer, h *tar.Header, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if h.Mode < 0 {
		h.Mode = int64(fi.Mode().Perm())
	}
	h.Uid, h.Gid, h.Size = 0, 0, fi.Size()
	return writeTar(tw, h, f)
}

func writeTar(tw *tar.Writer, h *tar.Header, r io.Reader) error {
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.Copy(tw, r)
	if err == nil && n != h.Size {
		err = fmt.Errorf("%s changed while being read", h.Name)
	}
	return err
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(digest string) string { return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:") }

// tagOf returns the tag of ref ("latest" without one).
func tagOf(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "latest"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func parseJSONList(s string, dst *[]string) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), dst)
}
