package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
)

// The native API's data commands. They are named *-data to stay apart from
// encrypt and decrypt, which work on files in the PPML formats.

const (
	// maxPlaintext is the native API's limit for Encrypt; more goes
	// through a data key.
	maxPlaintext = 4096
	// maxCiphertextInput bounds what decrypt-data and reencrypt-data read:
	// the base64 of the largest ciphertext, with room for line breaks.
	maxCiphertextInput = 16 << 10
	// ciphertextFormat is the first byte of a native ciphertext
	// (docs/spec/ciphertext.md).
	ciphertextFormat = 0x4B
	// batchSize is the most items the server takes in one batch request.
	batchSize = 100
	// maxBatchLine bounds one JSON line of a batch file.
	maxBatchLine = 1 << 20
)

const dataHelp = `INPUT is a file, or '-' (the default) for stdin. Ciphertexts are written as
base64 text and a newline to stdout, or as raw bytes to -o FILE ('-o -' for raw
bytes on stdout); decrypt-data and reencrypt-data read either form.

--context KEY=VALUE (repeatable) is the encryption context: it is bound to the
ciphertext as associated data and recorded in kmsd's audit log, and decrypting
needs the same pairs (in any order). A wrong context, key or modified
ciphertext exits with 7; kmsd never says which.`

const batchHelp = `

--batch FILE ('-' for stdin) does many items in few requests. FILE holds one
JSON object per line,
  %s
and the output has one JSON line per item, in order:
  %s
  or {"error":{"code":"...","message":"..."}}
Items fail one by one; the exit code is that of the first failed item.`

var dataCommands = []*command{
	{
		name: "encrypt-data", args: "[INPUT|-]", short: "encrypt up to 4096 bytes under a primary key (native API)", kms: true,
		long: "Encrypts a small payload (at most 4096 bytes: a secret, a data key) under the\n" +
			"newest version of --key. For files, use 'kmsctl encrypt' or a data key.\n\n" + dataHelp +
			fmt.Sprintf(batchHelp, `{"plaintext":"<base64>","context":{...}}`, `{"ciphertext":"<base64>","key_version":N}`),
		flags: dataFlags(true, nil), run: runEncryptData,
	},
	{
		name: "decrypt-data", args: "[INPUT|-]", short: "decrypt a native API ciphertext", kms: true,
		long: "Decrypts a ciphertext of --key made by encrypt-data, reencrypt-data or\n" +
			"generate-data-key, with the same --context. The plaintext goes to stdout,\n" +
			"or to -o FILE (mode 0600). A ciphertext of a version below the key's minimum\n" +
			"decryption version exits with 1 and says so.\n\n" + dataHelp +
			fmt.Sprintf(batchHelp, `{"ciphertext":"<base64>","context":{...}}`, `{"plaintext":"<base64>","key_version":N}`),
		flags: dataFlags(true, nil), run: runDecryptData,
	},
	{
		name: "reencrypt-data", args: "[INPUT|-]", short: "re-encrypt a ciphertext under the newest key version", kms: true,
		long: "Decrypts INPUT with --key and --context and encrypts it again under the newest\n" +
			"version of --to-key (default --key) with --to-context (default --context),\n" +
			"inside kmsd: the plaintext never leaves the server. Use it after a rotation,\n" +
			"before raising the minimum decryption version.\n\n" + dataHelp,
		flags: dataFlags(false, func(fs *flag.FlagSet, o *cmdOpts) {
			fs.StringVar(&o.native.toKey, "to-key", "", "encrypt under primary key `name` (default --key)")
			fs.Var(&o.native.toContext, "to-context", "destination encryption context `KEY=VALUE` (repeatable; default --context)")
		}),
		run: runReEncryptData,
	},
	{
		name: "generate-data-key", short: "make a random data key and its ciphertext under a primary key", kms: true,
		long: "Asks kmsd for a new random data key, encrypted under the newest version of --key\n" +
			"with --context. kmsd stores nothing: keep the ciphertext, and get the key back\n" +
			"with 'kmsctl decrypt-data'.\n\n" +
			"The ciphertext goes to stdout as base64 (-o FILE: raw bytes). The plaintext key\n" +
			"is written only where --plaintext-out says: a FILE (raw bytes, mode 0600) or\n" +
			"'-' for raw bytes on stdout (then give -o FILE for the ciphertext). Without\n" +
			"--plaintext-out, give --no-plaintext to get the ciphertext alone.",
		flags: dataFlags(false, func(fs *flag.FlagSet, o *cmdOpts) {
			fs.StringVar(&o.native.spec, "spec", "", "key size: AES_256 (default) or AES_128")
			fs.IntVar(&o.native.bytes, "bytes", 0, "key size in `bytes`, 16 to 64, instead of --spec")
			fs.StringVar(&o.native.plaintextOut, "plaintext-out", "", "write the plaintext key to `file` (mode 0600), '-' for stdout")
			fs.BoolVar(&o.native.noPlaintext, "no-plaintext", false, "get the ciphertext only (GenerateDataKeyWithoutPlaintext)")
		}),
		run: runGenerateDataKey,
	},
}

// dataFlags registers the flags of the data commands: batch adds --batch,
// extra comes before the common ones.
func dataFlags(batch bool, extra func(*flag.FlagSet, *cmdOpts)) func(*flag.FlagSet, *cmdOpts) {
	return func(fs *flag.FlagSet, o *cmdOpts) {
		fs.StringVar(&o.native.key, "key", "", "primary key `name`")
		fs.Var(&o.native.context, "context", "encryption context `KEY=VALUE` (repeatable)")
		if extra != nil {
			extra(fs, o)
		}
		if batch {
			fs.StringVar(&o.native.batch, "batch", "", "process the JSON lines of `file` ('-' for stdin) in batches")
		}
		fs.StringVar(&o.output, "output", "", "write raw bytes to `file` ('-' for stdout)")
		fs.StringVar(&o.output, "o", "", "short for --output `file`")
		fs.BoolVar(&o.force, "force", false, "replace an existing output file")
		jsonFlag(fs, o)
		credFlags(fs, o, true)
	}
}

// checkDataFlags checks what every data command needs before anything is
// read or asked for.
func checkDataFlags(o *cmdOpts) error {
	if o.native.key == "" {
		return usageErrorf("--key is required")
	}
	if o.native.json && o.output != "" && o.native.batch == "" {
		return usageErrorf("--json and --output exclude each other")
	}
	return refuseExistingFile(o.output, o.force)
}

// refuseExistingFile refuses to replace path without --force; "" and "-"
// are not files.
func refuseExistingFile(path string, force bool) error {
	if path == "" || path == "-" || force {
		return nil
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; use --force to replace it", path)
	}
	return nil
}

// readInput reads the one INPUT argument (stdin for none or "-"), at most
// limit bytes; tooLarge explains the limit.
func readInput(c *cli, o *cmdOpts, args []string, limit int, tooLarge string) ([]byte, error) {
	path := "-"
	switch len(args) {
	case 0:
	case 1:
		path = args[0]
	default:
		return nil, usageErrorf("want at most one INPUT argument, got %d", len(args))
	}
	r := c.stdin
	if path == "-" {
		if err := o.takeStdin("INPUT -"); err != nil {
			return nil, err
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		clear(b)
		return nil, usageErrorf("%s is larger than %d bytes%s", sourceName(path), limit, tooLarge)
	}
	return b, nil
}

// decodeCiphertext accepts a ciphertext as kmsctl writes it: its base64
// text, or raw bytes. Raw ciphertexts are never valid base64 in practice:
// their key version field holds zero bytes.
func decodeCiphertext(b []byte) []byte {
	text := strings.Join(strings.Fields(string(b)), "")
	if d, err := base64.StdEncoding.DecodeString(text); err == nil && len(d) > 0 && d[0] == ciphertextFormat {
		return d
	}
	return b
}

// writeCiphertext writes a ciphertext as -o and --json say.
func writeCiphertext(c *cli, o *cmdOpts, r *api.CiphertextResponse) error {
	if o.native.json {
		return printJSON(c.stdout, r)
	}
	return writeBytes(c, o.output, r.Ciphertext, 0o644, true)
}

// writeBytes writes data to the file out (atomically, with mode), raw to
// stdout for "-", or, for "", to stdout as base64 text if text, else raw.
func writeBytes(c *cli, out string, data []byte, mode os.FileMode, text bool) error {
	switch {
	case out == "" && text:
		_, err := fmt.Fprintln(c.stdout, base64.StdEncoding.EncodeToString(data))
		return err
	case out == "" || out == "-":
		_, err := c.stdout.Write(data)
		return err
	}
	return writeFileAtomic(out, data, mode)
}

func runEncryptData(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	if err := checkDataFlags(o); err != nil {
		return err
	}
	if o.native.batch != "" {
		return runBatch(ctx, c, o, args, false)
	}
	plaintext, err := readInput(c, o, args, maxPlaintext,
		" (encrypt-data's limit): encrypt a data key from generate-data-key with it, or use 'kmsctl encrypt'")
	if err != nil {
		return err
	}
	defer clear(plaintext)
	cl, err := nativeClient(c, o, credUser)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	r, err := cl.Encrypt(ctx, o.native.key, plaintext, o.native.context)
	if err != nil {
		return err
	}
	return writeCiphertext(c, o, r)
}

func runDecryptData(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	if err := checkDataFlags(o); err != nil {
		return err
	}
	if o.native.batch != "" {
		return runBatch(ctx, c, o, args, true)
	}
	in, err := readInput(c, o, args, maxCiphertextInput, "")
	if err != nil {
		return err
	}
	cl, err := nativeClient(c, o, credUser)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	r, err := cl.Decrypt(ctx, o.native.key, decodeCiphertext(in), o.native.context)
	if err != nil {
		return err
	}
	defer clear(r.Plaintext)
	if o.native.json {
		return printJSON(c.stdout, r)
	}
	return writeBytes(c, o.output, r.Plaintext, 0o600, false)
}

func runReEncryptData(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	if err := checkDataFlags(o); err != nil {
		return err
	}
	in, err := readInput(c, o, args, maxCiphertextInput, "")
	if err != nil {
		return err
	}
	cl, err := nativeClient(c, o, credUser)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	r, err := cl.ReEncrypt(ctx, o.native.key, api.ReEncryptRequest{
		Ciphertext: decodeCiphertext(in), Context: o.native.context,
		DestinationKey: o.native.toKey, DestinationContext: o.native.toContext,
	})
	if err != nil {
		return err
	}
	return writeCiphertext(c, o, r)
}

func runGenerateDataKey(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	n := &o.native
	if len(args) > 0 {
		return usageErrorf("generate-data-key takes no arguments")
	}
	if err := checkDataFlags(o); err != nil {
		return err
	}
	switch {
	case n.plaintextOut == "" && !n.noPlaintext:
		return usageErrorf("say where the plaintext key goes: --plaintext-out FILE, --plaintext-out - (stdout), or --no-plaintext")
	case n.plaintextOut != "" && n.noPlaintext:
		return usageErrorf("--plaintext-out and --no-plaintext exclude each other")
	case n.plaintextOut == "-" && (o.output == "" || o.output == "-"):
		return usageErrorf("--plaintext-out - writes the key to stdout: give -o FILE for the ciphertext")
	case n.plaintextOut != "" && n.plaintextOut == o.output:
		return usageErrorf("--plaintext-out and --output are the same file")
	case n.spec != "" && n.bytes != 0:
		return usageErrorf("--spec and --bytes exclude each other")
	}
	if err := refuseExistingFile(n.plaintextOut, o.force); err != nil {
		return err
	}
	cl, err := nativeClient(c, o, credUser)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	req := api.GenerateDataKeyRequest{KeySpec: n.spec, NumberOfBytes: n.bytes, Context: n.context}
	var r *api.DataKeyResponse
	if n.noPlaintext {
		r, err = cl.GenerateDataKeyWithoutPlaintext(ctx, n.key, req)
	} else {
		r, err = cl.GenerateDataKey(ctx, n.key, req)
	}
	if err != nil {
		return err
	}
	defer clear(r.Plaintext)
	// The key first: a ciphertext without its key is useless, and the
	// other way round it is merely lost.
	if !n.noPlaintext {
		if err := writeBytes(c, n.plaintextOut, r.Plaintext, 0o600, false); err != nil {
			return fmt.Errorf("write the plaintext key: %w", err)
		}
	}
	return writeCiphertext(c, o, &api.CiphertextResponse{Ciphertext: r.Ciphertext, KeyVersion: r.KeyVersion})
}

// runBatch runs encrypt-data or decrypt-data --batch: it reads JSON lines
// and sends them batchSize at a time, writing one result line per item.
func runBatch(ctx context.Context, c *cli, o *cmdOpts, args []string, decrypt bool) error {
	if len(args) > 0 {
		return usageErrorf("--batch takes no INPUT argument")
	}
	if len(o.native.context) > 0 {
		return usageErrorf("--context does not apply to --batch: give each line its \"context\"")
	}
	r, closeIn, err := openBatch(c, o)
	if err != nil {
		return err
	}
	defer closeIn()
	cl, err := nativeClient(c, o, credUser)
	if err != nil {
		return err
	}
	var out bytes.Buffer // for -o FILE, written at the end
	w := io.Writer(c.stdout)
	if o.output != "" && o.output != "-" {
		w = &out
		defer func() { clear(out.Bytes()) }()
	}
	b := &batch{c: c, o: o, cl: cl, decrypt: decrypt, w: w}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxBatchLine)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := b.add(sc.Bytes(), line); err != nil {
			return err
		}
		if b.pending() == batchSize {
			if err := b.flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("batch input: %w", err)
	}
	if err := b.flush(ctx); err != nil {
		return err
	}
	if w == &out {
		if err := writeFileAtomic(o.output, out.Bytes(), 0o600); err != nil {
			return err
		}
	}
	if b.failed > 0 {
		return fmt.Errorf("%d of %d batch items failed; the first, on line %d: %w", b.failed, b.total, b.firstLine, b.firstErr)
	}
	return nil
}

func openBatch(c *cli, o *cmdOpts) (io.Reader, func(), error) {
	if o.native.batch == "-" {
		if err := o.takeStdin("--batch -"); err != nil {
			return nil, nil, err
		}
		return c.stdin, func() {}, nil
	}
	f, err := os.Open(o.native.batch)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// batch collects the items of one request.
type batch struct {
	c       *cli
	o       *cmdOpts
	cl      *client.Client
	decrypt bool
	w       io.Writer

	enc   []api.EncryptRequest
	dec   []api.DecryptRequest
	lines []int // input line of each pending item

	total, failed int
	firstErr      error
	firstLine     int
}

func (b *batch) pending() int { return len(b.lines) }

// add parses one input line. Its content is never echoed: it may be a
// plaintext.
func (b *batch) add(line []byte, n int) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var err error
	if b.decrypt {
		// key_version is allowed, and ignored, so that encrypt-data
		// --batch's output lines are input lines here.
		var item struct {
			api.DecryptRequest
			KeyVersion int `json:"key_version"`
		}
		if err = dec.Decode(&item); err == nil && len(item.Ciphertext) == 0 {
			err = errors.New(`no "ciphertext"`)
		}
		b.dec = append(b.dec, item.DecryptRequest)
	} else {
		var item api.EncryptRequest
		err = dec.Decode(&item)
		b.enc = append(b.enc, item)
	}
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			err = errors.New("not JSON")
		}
		return usageErrorf("--batch line %d: %v (want one JSON object per line)", n, err)
	}
	b.lines = append(b.lines, n)
	return nil
}

// flush sends the pending items and writes their results.
func (b *batch) flush(ctx context.Context) error {
	if b.pending() == 0 {
		return nil
	}
	ctx, cancel := withTimeout(ctx, b.o)
	defer cancel()
	var res []client.BatchResult
	var err error
	if b.decrypt {
		res, err = b.cl.DecryptBatch(ctx, b.o.native.key, b.dec)
	} else {
		res, err = b.cl.EncryptBatch(ctx, b.o.native.key, b.enc)
	}
	for i := range b.enc {
		clear(b.enc[i].Plaintext)
	}
	if err != nil {
		return err
	}
	if len(res) != len(b.lines) {
		return fmt.Errorf("batch: %d results for %d items: %w", len(res), len(b.lines), client.ErrMalformedResponse)
	}
	enc := json.NewEncoder(b.w)
	for i, r := range res {
		item := api.BatchItem{Ciphertext: r.Ciphertext, Plaintext: r.Plaintext, KeyVersion: r.KeyVersion}
		if r.Err != nil {
			item = api.BatchItem{Error: &api.Error{Code: api.CodeInternal, Message: r.Err.Error()}}
			var ce *client.Error
			if errors.As(r.Err, &ce) {
				item.Error = &api.Error{Code: ce.Code, Message: ce.Message}
			}
			if b.failed == 0 {
				b.firstErr, b.firstLine = r.Err, b.lines[i]
			}
			b.failed++
		}
		err := enc.Encode(item)
		clear(r.Plaintext)
		if err != nil {
			return err
		}
	}
	b.total += len(res)
	b.enc, b.dec, b.lines = b.enc[:0], b.dec[:0], b.lines[:0]
	return nil
}
