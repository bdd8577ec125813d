package main

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"os"

	"github.com/ppmlkms/kms/client"
)

// attestOpts are the flags of "attest release". They live in cmdOpts
// (o.attest), which each run makes afresh: a closure-captured value would be
// shared by every run in the process.
type attestOpts struct {
	tee, dir, audience string
	curve              string
	mockMREnclave      string
	mockMRSigner       string
	mockMRTD           string
	mockISVProdID      uint
	mockISVSVN         uint
	exportPrimary      bool
	version            int
}

// attestCommand returns "kmsctl attest release": the workload side of
// attestation-gated key release. Register it in the command table.
func attestCommand() *command {
	return &command{
		name: "attest release", short: "release a data key to this attested enclave or TD", kms: true,
		long: "Run inside the workload. Gets a challenge from kmsd, makes an ephemeral key pair\n" +
			"and a quote binding the nonce, the public key and the KMS audience, and prints the\n" +
			"data key (base64), which kmsd sealed to that key (HPKE) after verifying the quote\n" +
			"against the primary key's release policy. --export-primary-key instead of\n" +
			"--data-key releases the primary key itself (32 bytes; --version N, default the\n" +
			"newest), if it was created exportable ('kmsctl key create --exportable').\n\n" +
			"--tee gramine reads /dev/attestation (Gramine with sgx.remote_attestation = \"dcap\"),\n" +
			"--tee tdx the kernel's configfs-tsm report interface (/sys/kernel/config/tsm/report),\n" +
			"--tee mock makes an INSECURE unsigned quote that only a kmsd started with\n" +
			"-attest-allow-mock-tee and a release policy with \"tee\":\"mock\" accept.\n\n" +
			"Exit codes: 5 when kmsd refuses the evidence (attestation or policy), 1 for a used\n" +
			"or expired nonce (run again).",
		flags: func(fs *flag.FlagSet, o *cmdOpts) {
			a := &o.attest
			primaryKeyFlag(fs, o)
			fs.StringVar(&o.dataKey, "data-key", "", "data key `name`")
			fs.BoolVar(&a.exportPrimary, "export-primary-key", false, "release the (exportable) primary key itself instead of a data key")
			fs.IntVar(&a.version, "version", 0, "with --export-primary-key: the key `version` (default: the newest)")
			fs.StringVar(&a.tee, "tee", "", "quote source: gramine, tdx or mock")
			fs.StringVar(&a.dir, "attestation-dir", "", "override /dev/attestation (gramine) or /sys/kernel/config/tsm/report (tdx) with `dir`")
			fs.StringVar(&a.audience, "audience", "", "the KMS identity to bind the quote to (kmsd's -attest-audience; default: as kmsd names it)")
			fs.StringVar(&a.curve, "curve", "x25519", "ephemeral HPKE key curve: x25519 or p256")
			fs.StringVar(&a.mockMREnclave, "mock-mrenclave", "", "mock TEE: MRENCLAVE (64 hex digits)")
			fs.StringVar(&a.mockMRSigner, "mock-mrsigner", "", "mock TEE: MRSIGNER (64 hex digits)")
			fs.UintVar(&a.mockISVProdID, "mock-isvprodid", 0, "mock TEE: ISVPRODID")
			fs.UintVar(&a.mockISVSVN, "mock-isvsvn", 0, "mock TEE: ISVSVN")
			fs.StringVar(&a.mockMRTD, "mock-mrtd", "", "mock TEE: MRTD (96 hex digits); makes a TD quote instead of an SGX one")
			fs.StringVar(&o.output, "output", "", "write the key to `file` (mode 0600) instead of stdout")
			fs.BoolVar(&o.force, "force", false, "overwrite --output if it exists")
		},
		run: func(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
			return runAttestRelease(ctx, c, o, &o.attest, args)
		},
	}
}

func runAttestRelease(ctx context.Context, c *cli, o *cmdOpts, a *attestOpts, args []string) error {
	if len(args) > 0 {
		return usageErrorf("attest release takes no arguments")
	}
	if err := needPrimaryKey(o); err != nil {
		return err
	}
	switch {
	case o.dataKey == "" && !a.exportPrimary:
		return usageErrorf("--data-key (or --export-primary-key) is required")
	case o.dataKey != "" && a.exportPrimary:
		return usageErrorf("--data-key and --export-primary-key exclude each other")
	case a.version < 0 || (a.version != 0 && !a.exportPrimary):
		return usageErrorf("--version is a positive version, with --export-primary-key only")
	}
	qp, err := a.provider()
	if err != nil {
		return err
	}
	opts := &client.ReleaseOptions{Audience: a.audience}
	if opts.Curve, err = curveByName(a.curve); err != nil {
		return err
	}
	if o.output != "" && o.output != "-" && !o.force {
		if _, err := os.Lstat(o.output); err == nil {
			return fmt.Errorf("%s exists; use --force to overwrite it", o.output)
		}
	}
	cl, err := attestClient(c, o)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var rel *client.ReleasedKey
	if a.exportPrimary {
		rel, err = cl.ReleasePrimaryKey(ctx, o.primaryKey, a.version, qp, opts)
	} else {
		rel, err = cl.ReleaseDataKey(ctx, o.primaryKey, o.dataKey, qp, opts)
	}
	if err != nil {
		return err
	}
	defer clear(rel.Key)
	if rel.Insecure {
		fmt.Fprintln(c.stderr, "kmsctl: warning: released on a MOCK TEE quote: nothing was attested (kmsd runs with -attest-allow-mock-tee)")
	}
	text := base64.StdEncoding.EncodeToString(rel.Key)
	if o.output == "" || o.output == "-" {
		_, err = fmt.Fprintln(c.stdout, text)
		return err
	}
	return writeFileAtomic(o.output, []byte(text+"\n"), 0o600)
}

// provider returns the quote provider --tee names.
func (a *attestOpts) provider() (client.QuoteProvider, error) {
	switch a.tee {
	case "gramine":
		return client.GramineQuoteProvider{Dir: a.dir}, nil
	case "tdx":
		return client.TDXQuoteProvider{Dir: a.dir}, nil
	case "mock":
		m := client.MockQuoteProvider{ISVProdID: uint16(a.mockISVProdID), ISVSVN: uint16(a.mockISVSVN)}
		if a.mockISVProdID > 0xffff || a.mockISVSVN > 0xffff {
			return nil, usageErrorf("--mock-isvprodid and --mock-isvsvn are 16-bit numbers")
		}
		for _, f := range []struct {
			flag, v string
			dst     []byte
		}{{"mock-mrenclave", a.mockMREnclave, m.MREnclave[:]}, {"mock-mrsigner", a.mockMRSigner, m.MRSigner[:]}, {"mock-mrtd", a.mockMRTD, m.MRTD[:]}} {
			if f.v == "" {
				continue
			}
			b, err := hex.DecodeString(f.v)
			if err != nil || len(b) != len(f.dst) {
				return nil, usageErrorf("--%s: want %d hex digits", f.flag, 2*len(f.dst))
			}
			copy(f.dst, b)
		}
		if a.mockMRTD != "" {
			m.TEE = "tdx"
		}
		return m, nil
	case "":
		return nil, usageErrorf("--tee is required: gramine, tdx or mock")
	}
	return nil, usageErrorf("--tee %q: want gramine, tdx or mock", a.tee)
}

// attestClient is settings.client with the user's credential as a bearer
// token, which the attestation API (native) needs.
func attestClient(c *cli, o *cmdOpts) (*client.Client, error) {
	s, err := o.resolve(c)
	if err != nil {
		return nil, err
	}
	user, err := s.needUser()
	if err != nil {
		return nil, err
	}
	token, err := o.token(c, s, "Token for user "+user, false)
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithUserAgent("kmsctl/" + versionString()), client.WithToken(user, token)}
	switch {
	case s.insecure:
		fmt.Fprintln(c.stderr, "kmsctl: warning: TLS certificate verification is off (--insecure); tokens and keys can be intercepted")
		opts = append(opts, client.WithInsecureSkipVerify())
	case s.cacert != "":
		opts = append(opts, client.WithCAFile(s.cacert))
	}
	cl, err := client.New(serverURL(s.server), opts...)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return cl, nil
}

func curveByName(name string) (ecdh.Curve, error) {
	switch name {
	case "x25519", "":
		return ecdh.X25519(), nil
	case "p256", "P-256", "p-256":
		return ecdh.P256(), nil
	}
	return nil, usageErrorf("--curve %q: want x25519 or p256", name)
}
