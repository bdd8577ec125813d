package ppmlsecrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File is one file of a Secret, or a manifest, to write to disk.
type File struct {
	Name string      // base name, e.g. "server.key"
	Data []byte      // contents
	Mode fs.FileMode // permission bits, e.g. 0600
}

// Manifest returns s rendered by [Secret.YAML] as a File named name with
// mode 0600 (a manifest holds the secret values).
func (s *Secret) Manifest(name string) (File, error) {
	y, err := s.YAML()
	if err != nil {
		return File{}, err
	}
	return File{Name: name, Data: y, Mode: 0o600}, nil
}

// Layout of an output directory, as BigDL's scripts leave it.
const (
	KeysDir          = "keys"          // the ssl-keys files and KeysManifest
	KeysManifest     = "keys.yaml"     // Secret ssl-keys
	PasswordDir      = "password"      // key.txt, output.bin and PasswordManifest
	PasswordManifest = "password.yaml" // Secret ssl-password
)

// WriteFiles writes files into dir, creating dir (mode 0700) if needed.
// Names must be plain base names. Each file is written to a temporary file,
// synced and then moved into place, so a crash never leaves a partial file.
// Unless overwrite is set, WriteFiles first checks that none of the files
// exists and writes nothing if one does: regenerating keys by accident would
// strand every component that trusts the old certificate.
//
// Concurrent writers to the same directory may interleave; the caller
// serialises them.
func WriteFiles(dir string, files []File, overwrite bool) error {
	for _, f := range files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." || strings.ContainsRune(f.Name, os.PathSeparator) {
			return fmt.Errorf("invalid file name %q", f.Name)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if !overwrite {
		for _, f := range files {
			if _, err := root.Lstat(f.Name); err == nil {
				return fmt.Errorf("%s already exists", filepath.Join(dir, f.Name))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	for _, f := range files {
		if err := writeFile(root, f, overwrite); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(dir, f.Name), err)
		}
	}
	return syncDir(dir)
}

// writeFile writes f through a temporary file in root. Without overwrite it
// links the temporary file into place, which fails rather than replacing a
// file that appeared meanwhile.
func writeFile(root *os.Root, f File, overwrite bool) (err error) {
	mode := f.Mode.Perm()
	if mode == 0 {
		mode = 0o600
	}
	tmpName := "." + f.Name + ".tmp"
	tmp, err := root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			root.Remove(tmpName)
		}
	}()
	// Chmod: OpenFile's mode is filtered by the umask.
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(f.Data); err != nil {
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
	if overwrite {
		return root.Rename(tmpName, f.Name)
	}
	if err := root.Link(tmpName, f.Name); err != nil {
		return err
	}
	return root.Remove(tmpName)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteKeys writes the ssl-keys files and their manifest into
// out/[KeysDir], as `generate-keys.sh` leaves ./keys: the six files and
// keys.yaml (Secret ssl-keys in namespace, if not empty). See [WriteFiles]
// for overwrite and the guarantees.
func WriteKeys(out string, k *Keys, namespace string, overwrite bool) error {
	m, err := k.Secret(namespace).Manifest(KeysManifest)
	if err != nil {
		return err
	}
	return WriteFiles(filepath.Join(out, KeysDir), append(k.Files(), m), overwrite)
}

// WritePassword writes key.txt, output.bin and password.yaml (Secret
// ssl-password) into out/[PasswordDir], as `generate-password.sh` leaves
// ./password. See [WriteFiles] for overwrite and the guarantees.
func WritePassword(out string, p *Password, namespace string, overwrite bool) error {
	m, err := p.Secret(namespace).Manifest(PasswordManifest)
	if err != nil {
		return err
	}
	return WriteFiles(filepath.Join(out, PasswordDir), append(p.Files(), m), overwrite)
}
