package ppml

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Names in a Spark directory of encrypted parts.
const (
	// MetaFile is the file in which PPMLContext records the directory's
	// encryptedDataKey.
	MetaFile = ".meta"
	// PartSuffix is the extension of encrypted part files; BigDL's
	// CryptoCodec is registered for it.
	PartSuffix = ".cbc"

	maxMetaSize = 64 << 10
)

// Errors of the directory helpers.
var (
	// ErrMixedKeys reports parts (or a .meta file) naming different
	// encryptedDataKeys, which PPMLContext never writes.
	ErrMixedKeys = errors.New("ppml: parts of the directory use different data keys")
	// ErrNoFiles reports a directory with nothing to encrypt or decrypt.
	ErrNoFiles = errors.New("ppml: no files to process")
)

// MarshalMeta returns the .meta content that PPMLContext writes for a
// directory: Jackson's default pretty printer, then a newline.
//
//	{
//	  "encryptedDataKey" : "0f8fad5b-d9cb-469f-a165-70867728950e"
//	}
func MarshalMeta(encryptedDataKey string) []byte {
	var q bytes.Buffer
	enc := json.NewEncoder(&q)
	enc.SetEscapeHTML(false) // Jackson does not escape <, > and &
	enc.Encode(encryptedDataKey)
	v := bytes.TrimSuffix(q.Bytes(), []byte("\n"))
	return []byte("{\n  \"encryptedDataKey\" : " + string(v) + "\n}\n")
}

// ParseMeta returns the encryptedDataKey of a .meta file. It accepts any
// JSON object with a string field "encryptedDataKey", in any layout and
// with other fields ignored; otherwise it returns an error wrapping
// [ErrFormat].
func ParseMeta(b []byte) (string, error) {
	var m struct {
		EncryptedDataKey *string `json:"encryptedDataKey"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("%w: .meta is not a JSON object: %v", ErrFormat, err)
	}
	if m.EncryptedDataKey == nil {
		return "", fmt.Errorf("%w: .meta has no encryptedDataKey", ErrFormat)
	}
	return *m.EncryptedDataKey, nil
}

// WriteMeta atomically writes dir/.meta naming encryptedDataKey.
func WriteMeta(dir, encryptedDataKey string) error {
	return writeAtomic(filepath.Join(dir, MetaFile), encryptedFileMode, func(w io.Writer) error {
		_, err := w.Write(MarshalMeta(encryptedDataKey))
		return err
	})
}

// ReadMeta returns the encryptedDataKey recorded in dir/.meta. A missing
// file gives an error matching [os.ErrNotExist].
func ReadMeta(dir string) (string, error) {
	f, err := os.Open(filepath.Join(dir, MetaFile))
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxMetaSize {
		return "", fmt.Errorf("%w: .meta is larger than %d bytes", ErrFormat, maxMetaSize)
	}
	return ParseMeta(b)
}

// EncryptDir encrypts every regular file of srcDir (not its subdirectories,
// and not names starting with '.' or '_', which Hadoop treats as hidden,
// such as _SUCCESS) into dstDir/<name>.cbc with [EncryptFile], then writes
// dstDir/.meta, creating dstDir if needed. The result is a directory that
// PPMLContext reads. It returns the paths written, parts first.
//
// Each file appears atomically; if a file fails, the parts already written
// stay and the error says which file failed. It returns [ErrNoFiles] if
// srcDir has no file to encrypt, and refuses dstDir == srcDir.
func EncryptDir(dstDir, srcDir, key, encryptedDataKey string) ([]string, error) {
	if _, err := deriveKeys(FormatCurrent, key); err != nil {
		return nil, err
	}
	if err := checkEncryptedDataKey(encryptedDataKey); err != nil {
		return nil, err
	}
	names, err := listFiles(srcDir, "")
	if err != nil {
		return nil, err
	}
	if err := checkDistinct(dstDir, srcDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		dst := filepath.Join(dstDir, name+PartSuffix)
		if err := EncryptFile(dst, filepath.Join(srcDir, name), key, encryptedDataKey); err != nil {
			return out, fmt.Errorf("encrypt %s: %w", name, err)
		}
		out = append(out, dst)
	}
	if err := WriteMeta(dstDir, encryptedDataKey); err != nil {
		return out, err
	}
	return append(out, filepath.Join(dstDir, MetaFile)), nil
}

// DecryptDir decrypts every *.cbc part of srcDir into dstDir/<name without
// .cbc>, creating dstDir if needed, and returns the paths written.
//
// It first reads every part's header: all must name the same
// encryptedDataKey, and so must srcDir/.meta if it exists, or it returns
// [ErrMixedKeys] before writing anything. It then calls keyFn once, with
// that name (taken from .meta for formats whose header has none; empty if
// there is no .meta either), and
// decrypts each part with [DecryptFile], so each output appears only once
// its tag verifies. It returns [ErrNoFiles] if srcDir has no part.
func DecryptDir(dstDir, srcDir string, f Format, keyFn KeyFunc) ([]string, error) {
	names, err := listFiles(srcDir, PartSuffix)
	if err != nil {
		return nil, err
	}
	edk, err := dirDataKey(srcDir, names, f)
	if err != nil {
		return nil, err
	}
	key, err := keyFn(edk)
	if err != nil {
		return nil, fmt.Errorf("ppml: get data key: %w", err)
	}
	if err := os.MkdirAll(dstDir, 0o700); err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		dst := filepath.Join(dstDir, strings.TrimSuffix(name, PartSuffix))
		if err := DecryptFile(dst, filepath.Join(srcDir, name), f, StaticKey(key)); err != nil {
			return out, fmt.Errorf("decrypt %s: %w", name, err)
		}
		out = append(out, dst)
	}
	return out, nil
}

// dirDataKey returns the one encryptedDataKey that the parts' headers and
// the .meta file agree on.
func dirDataKey(dir string, names []string, f Format) (string, error) {
	edk, first := "", true
	for _, name := range names {
		h, err := ReadHeaderFile(filepath.Join(dir, name), f)
		if err != nil {
			return "", fmt.Errorf("read header of %s: %w", name, err)
		}
		if !first && h.EncryptedDataKey != edk {
			return "", fmt.Errorf("%w: %s differs from the parts before it", ErrMixedKeys, name)
		}
		edk, first = h.EncryptedDataKey, false
	}
	meta, err := ReadMeta(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return edk, nil
	case err != nil:
		return "", err
	case edk == "":
		return meta, nil
	case meta != edk:
		return "", fmt.Errorf("%w: %s disagrees with the parts' headers", ErrMixedKeys, MetaFile)
	}
	return edk, nil
}

// listFiles returns the names of the regular files (following symbolic
// links) in dir that end in suffix and are not hidden, sorted.
func listFiles(dir, suffix string) ([]string, error) {
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
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoFiles, dir)
	}
	return names, nil
}

// checkDistinct refuses to encrypt a directory into itself, where the new
// parts would be mixed with the plaintext.
func checkDistinct(dstDir, srcDir string) error {
	a, errA := os.Stat(dstDir)
	b, errB := os.Stat(srcDir)
	if errA == nil && errB == nil && os.SameFile(a, b) {
		return fmt.Errorf("ppml: output directory %s is the input directory", dstDir)
	}
	return nil
}
