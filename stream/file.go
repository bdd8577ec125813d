package stream

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File modes of the outputs: ciphertext may be shared, plaintext stays
// private.
const (
	encryptedFileMode fs.FileMode = 0o644
	plaintextFileMode fs.FileMode = 0o600
)

// EncryptFile encrypts the file at srcPath into dstPath with [Encrypt]. The
// output is written to a temporary file in dstPath's directory, synced, and
// renamed over dstPath only on success; on error nothing is left behind.
func EncryptFile(dstPath, srcPath string, key []byte, ref KeyRef, opts *Options) error {
	in, err := os.Open(srcPath)
	if err != nil {
		return err
	}
	defer in.Close()
	return EncryptTo(dstPath, in, key, ref, opts)
}

// EncryptTo is [EncryptFile] reading from src, such as standard input.
func EncryptTo(dstPath string, src io.Reader, key []byte, ref KeyRef, opts *Options) error {
	return writeAtomic(dstPath, encryptedFileMode, func(w io.Writer) error {
		return Encrypt(w, src, key, ref, opts)
	})
}

// DecryptFile decrypts the file at srcPath into dstPath with [Decrypt]. The
// plaintext goes to a temporary file (mode 0600) in dstPath's directory,
// which is renamed over dstPath only when the whole stream has verified; on
// any error it is removed and dstPath is left as it was.
func DecryptFile(dstPath, srcPath string, keyFn KeyFunc) error {
	in, err := os.Open(srcPath)
	if err != nil {
		return err
	}
	defer in.Close()
	return DecryptTo(dstPath, in, keyFn)
}

// DecryptTo is [DecryptFile] reading from src, such as standard input.
func DecryptTo(dstPath string, src io.Reader, keyFn KeyFunc) error {
	return writeAtomic(dstPath, plaintextFileMode, func(w io.Writer) error {
		return Decrypt(w, src, keyFn)
	})
}

// writeAtomic runs write on a temporary file next to path and renames it to
// path if write succeeds (temp, fsync, rename, as tailscale's atomicfile).
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
	if d, err := os.Open(dir); err == nil { // best effort: make the rename durable
		d.Sync()
		d.Close()
	}
	return nil
}
