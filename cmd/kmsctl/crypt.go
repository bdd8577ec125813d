package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ppmlkms/kms/ppml"
	"github.com/ppmlkms/kms/stream"
)

// File formats on the command line.
const (
	fmtAuto      = "auto"
	fmtBigDL     = "bigdl"        // ppml.FormatCurrent, BigDL ≥ 2.3
	fmtBigDLOld  = "bigdl-old"    // ppml.FormatLegacy, BigDL ≤ 2.2 (read only)
	fmtNativeCBC = "nativeaescbc" // ppml.FormatNativeAESCBC (read only)
	fmtStream    = "stream"       // our AES-256-GCM STREAM format
)

// Extensions that encrypt appends and decrypt strips.
const (
	extBigDL  = ppml.PartSuffix // ".cbc", which BigDL's CryptoCodec is registered for
	extStream = ".kms"
)

var cryptCommands = []*command{
	{
		name: "encrypt", args: "INPUT", short: "encrypt a file, a Spark input directory or stdin", kms: true,
		long: encryptHelp, flags: cryptFlags(fmtBigDL), run: runEncrypt,
	},
	{
		name: "decrypt", args: "INPUT", short: "decrypt a file, a Spark output directory or stdin", kms: true,
		long: decryptHelp, flags: cryptFlags(fmtAuto), run: runDecrypt,
	},
}

const encryptHelp = `INPUT is a file, a directory or '-' for stdin. Formats:
  bigdl   BigDL PPML's AES-CBC + HMAC-SHA256 format with the 400-byte header
          (BigDLEncrypt, PPMLContext); output INPUT.cbc. A directory becomes a
          directory of <name>.cbc parts plus .meta, as PPMLContext writes it.
  stream  our authenticated AES-256-GCM STREAM format; output INPUT.kms. Its
          header names the primary and data key, so decrypt needs no flags.

The data key comes from kmsd (--primary-key and --data-key, with
--create-data-key to create it first; without --data-key a random UUID name
is used, as PPMLContext does) or from a local base64 key (--key-file).
The output appears only when complete (temporary file, then rename).`

const decryptHelp = `INPUT is a file, a directory or '-' for stdin. The format is detected
(bigdl, bigdl-old, stream) unless --format says otherwise; nativeaescbc files
cannot be recognised and need --format nativeaescbc.

BigDL files name their data key in the header (directories in .meta) but not
the primary key: give --primary-key. Stream files name both. bigdl-old and
nativeaescbc files name nothing: give --data-key, or --key-file.

kmsctl writes no plaintext it has not verified: the output appears, by
rename, only after the whole file authenticated; on a bad tag, a truncated or
a tampered file it exits with 7 and leaves nothing. Plaintext for stdout is
staged in a private temporary file first. nativeaescbc has no MAC at all:
only its padding is checked.`

func cryptFlags(defaultFormat string) func(*flag.FlagSet, *cmdOpts) {
	return func(fs *flag.FlagSet, o *cmdOpts) {
		formats := "bigdl or stream"
		if defaultFormat == fmtAuto {
			formats = "auto, bigdl, bigdl-old, nativeaescbc or stream"
		}
		fs.StringVar(&o.format, "format", defaultFormat, "file `format`: "+formats)
		fs.StringVar(&o.output, "output", "", "output `path`; '-' for stdout (default: from INPUT, stdout for '-')")
		fs.StringVar(&o.output, "o", "", "short for --output `path`")
		fs.BoolVar(&o.force, "force", false, "replace an existing output")
		fs.StringVar(&o.keyFile, "key-file", "", "use the base64 data key in `file` ('-' for stdin) instead of kmsd")
		primaryKeyFlag(fs, o)
		fs.StringVar(&o.dataKey, "data-key", "", "data key `name`")
		if defaultFormat != fmtAuto {
			fs.BoolVar(&o.createDataKey, "create-data-key", false, "create the data key first (a random UUID name without --data-key)")
		}
	}
}

// keySource fetches data keys, from kmsd or a local key file.
type keySource struct {
	c   *cli
	o   *cmdOpts
	ses *session // connected on first use

	local string // the key file's text, if --key-file
	cache map[[2]string]string
}

func newKeySource(c *cli, o *cmdOpts) (*keySource, error) {
	ks := &keySource{c: c, o: o, cache: map[[2]string]string{}}
	if o.keyFile == "" {
		return ks, nil
	}
	if o.createDataKey {
		return nil, usageErrorf("--key-file and --create-data-key exclude each other")
	}
	text, err := readKeyFile(c, o)
	if err != nil {
		return nil, err
	}
	ks.local = text
	return ks, nil
}

func readKeyFile(c *cli, o *cmdOpts) (string, error) {
	r := c.stdin
	if o.keyFile == "-" {
		if err := o.takeStdin("--key-file -"); err != nil {
			return "", err
		}
	} else {
		f, err := os.Open(o.keyFile)
		if err != nil {
			return "", fmt.Errorf("key file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("key file: %w", err)
	}
	defer clear(b)
	text := strings.TrimSpace(string(b))
	if text == "" || len(b) > maxKeyFile || strings.ContainsAny(text, " \t\r\n") {
		return "", fmt.Errorf("key file %s: want one line of base64", o.keyFile)
	}
	return text, nil
}

// maxKeyFile bounds a key file; a data key is 24 or 44 characters.
const maxKeyFile = 4096

func (ks *keySource) isLocal() bool { return ks.o.keyFile != "" }

func (ks *keySource) session() (*session, error) {
	if ks.ses == nil {
		ses, err := connect(ks.c, ks.o, true)
		if err != nil {
			return nil, err
		}
		ks.ses = ses
	}
	return ks.ses, nil
}

// text returns the base64 text of the data key, from the key file or from
// kmsd (fetched once per name).
func (ks *keySource) text(ctx context.Context, primary, name string) (string, error) {
	if ks.isLocal() {
		return ks.local, nil
	}
	if primary == "" {
		return "", usageErrorf("--primary-key is required to fetch data key %q (or use --key-file)", name)
	}
	if name == "" {
		return "", usageErrorf("the input does not name its data key: give --data-key (or --key-file)")
	}
	if k, ok := ks.cache[[2]string{primary, name}]; ok {
		return k, nil
	}
	ses, err := ks.session()
	if err != nil {
		return "", err
	}
	ctx, cancel := ses.timeout(ctx)
	defer cancel()
	k, err := ses.c.DataKeyString(ctx, ses.user, ses.token, primary, name)
	if err != nil {
		return "", err
	}
	ks.cache[[2]string{primary, name}] = k
	return k, nil
}

// create creates data key name (a random UUID if empty) under primary and
// returns the name.
func (ks *keySource) create(ctx context.Context, primary, name string) (string, error) {
	if name == "" {
		name = newUUID()
	}
	ses, err := ks.session()
	if err != nil {
		return "", err
	}
	ctx, cancel := ses.timeout(ctx)
	defer cancel()
	if err := ses.c.CreateDataKey(ctx, ses.user, ses.token, primary, name); err != nil {
		return "", err
	}
	fmt.Fprintf(ks.c.stderr, "kmsctl: created data key %q under primary key %q\n", name, primary)
	return name, nil
}

// streamKey decodes a data key's base64 text into a stream file key. The
// stream format takes the 16-byte KMS data key as it is: its HKDF step
// derives the per-file AES-256 key (docs/spec/stream-format.md §4).
func streamKey(text string) ([]byte, error) {
	k, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil || len(k) != 16 && len(k) != 32 {
		clear(k)
		return nil, fmt.Errorf("%w: want the base64 of 16 or 32 bytes", stream.ErrKey)
	}
	return k, nil
}

// agree checks a name from the command line against the one in the file.
func agree(what, flagValue, fileValue string) (string, error) {
	switch {
	case flagValue == "":
		return fileValue, nil
	case fileValue != "" && fileValue != flagValue:
		return "", usageErrorf("the input names %s %q, not %q", what, fileValue, flagValue)
	}
	return flagValue, nil
}

// newUUID returns a random (version 4) UUID, the kind of data key name
// PPMLContext generates.
func newUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func runEncrypt(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	in, err := oneName(args, "INPUT")
	if err != nil {
		return err
	}
	ext := extBigDL
	switch o.format {
	case fmtBigDL:
	case fmtStream:
		ext = extStream
	case fmtBigDLOld, fmtNativeCBC:
		return usageErrorf("kmsctl reads the %s format but writes only bigdl and stream", o.format)
	default:
		return usageErrorf("unknown --format %q: want bigdl or stream", o.format)
	}
	if o.keyFile == "" && o.primaryKey == "" {
		return usageErrorf("give --primary-key and --data-key (or --create-data-key), or --key-file")
	}
	if o.keyFile == "" && o.dataKey == "" && !o.createDataKey {
		return usageErrorf("give --data-key, or --create-data-key to create one")
	}
	src, err := openInput(c, o, in)
	if err != nil {
		return err
	}
	defer src.Close()
	ks, err := newKeySource(c, o)
	if err != nil {
		return err
	}
	out, err := outputPath(o, in, src.dir, func(p string) (string, bool) { return p + ext, true })
	if err != nil {
		return err
	}
	name := o.dataKey
	if o.createDataKey {
		if name, err = ks.create(ctx, o.primaryKey, name); err != nil {
			return err
		}
	}
	text, err := ks.text(ctx, o.primaryKey, name)
	if err != nil {
		return err
	}
	if o.format == fmtStream {
		return encryptStream(ctx, c, o, src, out, text, name)
	}
	if src.dir {
		return writeDir(ctx, out, o.force, 0o755, func(tmp string) error {
			_, err := ppml.EncryptDir(tmp, in, text, name)
			return err
		})
	}
	return writeOutput(c, out, src.reader(ctx, c, "encrypt"), false, func(dst string, r io.Reader) error {
		return ppml.EncryptTo(dst, r, text, name)
	}, func(w io.Writer, r io.Reader) error {
		return ppml.Encrypt(w, r, text, name)
	})
}

func encryptStream(ctx context.Context, c *cli, o *cmdOpts, src *input, out, text, name string) error {
	key, err := streamKey(text)
	if err != nil {
		return err
	}
	defer clear(key)
	ref := stream.KeyRef{}
	if o.keyFile == "" {
		ref = stream.KMSRef(o.primaryKey, name)
	}
	if src.dir {
		return writeDir(ctx, out, o.force, 0o755, func(tmp string) error {
			return eachFile(ctx, src.path, "", func(name string, r io.Reader) error {
				return stream.EncryptTo(joinPath(tmp, name+extStream), r, key, ref, nil)
			})
		})
	}
	return writeOutput(c, out, src.reader(ctx, c, "encrypt"), false, func(dst string, r io.Reader) error {
		return stream.EncryptTo(dst, r, key, ref, nil)
	}, func(w io.Writer, r io.Reader) error {
		return stream.Encrypt(w, r, key, ref, nil)
	})
}

func runDecrypt(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	in, err := oneName(args, "INPUT")
	if err != nil {
		return err
	}
	var pf ppml.Format
	switch o.format {
	case fmtAuto, fmtStream:
	case fmtBigDL:
		pf = ppml.FormatCurrent
	case fmtBigDLOld:
		pf = ppml.FormatLegacy
	case fmtNativeCBC:
		pf = ppml.FormatNativeAESCBC
	default:
		return usageErrorf("unknown --format %q: want auto, bigdl, bigdl-old, nativeaescbc or stream", o.format)
	}
	src, err := openInput(c, o, in)
	if err != nil {
		return err
	}
	defer src.Close()
	ks, err := newKeySource(c, o)
	if err != nil {
		return err
	}
	out, err := outputPath(o, in, src.dir, stripExt)
	if err != nil {
		return err
	}
	isStream := o.format == fmtStream
	if o.format == fmtAuto {
		if isStream, err = src.isStream(); err != nil {
			return err
		}
	}
	if isStream {
		return decryptStream(ctx, c, src, out, o.force, ks)
	}
	keyFn := func(edk string) (string, error) {
		name, err := agree("data key", o.dataKey, edk)
		if err != nil {
			return "", err
		}
		return ks.text(ctx, o.primaryKey, name)
	}
	if src.dir {
		return writeDir(ctx, out, o.force, 0o700, func(tmp string) error {
			_, err := ppml.DecryptDir(tmp, in, pf, keyFn)
			return err
		})
	}
	return writeOutput(c, out, src.reader(ctx, c, "decrypt"), true, func(dst string, r io.Reader) error {
		return ppml.DecryptTo(dst, r, pf, keyFn)
	}, nil)
}

func decryptStream(ctx context.Context, c *cli, src *input, out string, force bool, ks *keySource) error {
	keyFn := func(ref stream.KeyRef) ([]byte, error) { return ks.streamKey(ctx, ref) }
	if src.dir {
		return writeDir(ctx, out, force, 0o700, func(tmp string) error {
			return eachFile(ctx, src.path, extStream, func(name string, r io.Reader) error {
				return stream.DecryptTo(joinPath(tmp, strings.TrimSuffix(name, extStream)), r, keyFn)
			})
		})
	}
	return writeOutput(c, out, src.reader(ctx, c, "decrypt"), true, func(dst string, r io.Reader) error {
		return stream.DecryptTo(dst, r, keyFn)
	}, nil)
}

// streamKey returns the file key for a stream whose header holds ref: the
// local key, or the KMS data key that ref names (flags may repeat the
// names, not contradict them).
func (ks *keySource) streamKey(ctx context.Context, ref stream.KeyRef) ([]byte, error) {
	primary, name := ks.o.primaryKey, ks.o.dataKey
	switch {
	case ks.isLocal():
	case ref.Type == stream.KeyRefKMS:
		var err error
		if primary, err = agree("primary key", primary, ref.PrimaryKey); err != nil {
			return nil, err
		}
		if name, err = agree("data key", name, ref.DataKey); err != nil {
			return nil, err
		}
	case ref.Type == stream.KeyRefNone:
		if name == "" {
			return nil, usageErrorf("the input names no KMS key (it was encrypted with a local key): give --key-file")
		}
	default:
		return nil, fmt.Errorf("the input's key reference (%v) is not supported by kmsctl", ref)
	}
	text, err := ks.text(ctx, primary, name)
	if err != nil {
		return nil, err
	}
	return streamKey(text)
}

// stripExt derives decrypt's default output name.
func stripExt(p string) (string, bool) {
	for _, ext := range []string{extBigDL, extStream} {
		if s, ok := strings.CutSuffix(p, ext); ok && s != "" && !strings.HasSuffix(s, "/") {
			return s, true
		}
	}
	return "", false
}

// sniffLen is how much of an input decrypt looks at to pick the format.
const sniffLen = len(stream.Magic)

// isStreamHeader reports whether b starts a stream file.
func isStreamHeader(b []byte) bool { return string(b) == stream.Magic }
