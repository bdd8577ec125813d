package ppml

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File modes of the outputs: ciphertext is meant to be shipped to Spark
// jobs running as other users; plaintext stays private.
const (
	encryptedFileMode fs.FileMode = 0o644
	plaintextFileMode fs.FileMode = 0o600
)

// EncryptFile encrypts the file at srcPath into dstPath with [Encrypt].
// The output appears atomically: it is written to a temporary file in the
// same directory, synced and renamed over dstPath (replacing any file there)
// only on success; on any error no output is left behind.
func EncryptFile(dstPath, srcPath, key, encryptedDataKey string) error {
	in, err := os.Open(srcPath)
	if err != nil {
		return err
	}
	defer in.Close()
	return EncryptTo(dstPath, in, key, encryptedDataKey)
}

// EncryptTo is [EncryptFile] reading from src, such as standard input or a
// reader that reports progress.
func EncryptTo(dstPath string, src io.Reader, key, encryptedDataKey string) error {
	return writeAtomic(dstPath, encryptedFileMode, func(w io.Writer) error {
		return Encrypt(w, src, key, encryptedDataKey)
	})
}

// DecryptFile decrypts the file at srcPath into dstPath with [Decrypt]. The
// plaintext goes to a temporary file in dstPath's directory (mode 0600),
// which is synced and renamed over dstPath only once the tag has verified.
// On any error, including [ErrAuth] and [ErrTruncated], it is removed and
// dstPath is left as it was.
func DecryptFile(dstPath, srcPath string, f Format, keyFn KeyFunc) error {
	in, err := os.Open(srcPath)
	if err != nil {
		return err
	}
	defer in.Close()
	return DecryptTo(dstPath, in, f, keyFn)
}

// DecryptTo is [DecryptFile] reading from src, such as standard input.
func DecryptTo(dstPath string, src io.Reader, f Format, keyFn KeyFunc) error {
	return writeAtomic(dstPath, plaintextFileMode, func(w io.Writer) error {
		return Decrypt(w, src, f, keyFn)
	})
}

// writeAtomic runs write on a temporary file next to path and renames it to
// path if write succeeds, in the manner of tailscale's atomicfile. The
// temporary name starts with '.', which Hadoop's readers skip, so a crash
// cannot make a half-written part visible to Spark.
func writeAtomic(path string, mode fs.FileMode, write func(io.Writer) error) (err error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename durable. It is best effort: some systems cannot
// sync directories, and the data itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
