package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ppmlkms/kms/internal/ppmlsecrets"
)

// The secrets commands make the Kubernetes Secrets of a BigDL PPML cluster
// with package ppmlsecrets, in place of BigDL's generate-keys.sh,
// generate-password.sh and kubectl create secret. They work offline: no
// kmsd, no openssl, no keytool. See docs/secrets.md.

// secretsOpts holds the flags of the secrets commands.
type secretsOpts struct {
	out            string
	namespace      string
	dns, ips       stringList
	cn             string
	key            string
	days           int
	pkcs12         string
	passwordFile   string
	passwordDir    string
	randomPassword bool
	appID          string
	apiKeyFile     string
	policyID       string
}

var secretsCommands = []*command{
	{
		name: "secrets generate-keys", short: "write the ssl-keys Secret: TLS keystores, certificate and key",
		long: generateKeysHelp, flags: generateKeysFlags, run: runGenerateKeys,
	},
	{
		name: "secrets generate-password", short: "write the ssl-password Secret: the keystore password, encrypted",
		long: generatePasswordHelp, run: runGeneratePassword,
		flags: func(fs *flag.FlagSet, o *cmdOpts) {
			outFlag(fs, o, "`dir`ectory to write password/ into")
			namespaceFlag(fs, o)
			passwordFileFlag(fs, o)
			forceFlag(fs, o)
		},
	},
	{
		name: "secrets kms-secret", short: "write the kms-secret Secret: KMS app id, api key and policy id",
		long: kmsSecretHelp, run: runKMSSecret,
		flags: func(fs *flag.FlagSet, o *cmdOpts) {
			fs.StringVar(&o.secrets.appID, "app-id", "", "the KMS app `id`")
			fs.StringVar(&o.secrets.apiKeyFile, "api-key-file", "", "read the KMS api key from `file`, '-' for stdin")
			fs.StringVar(&o.secrets.policyID, "policy-id", "", "the attestation policy `id`; also writes policy-id-secret")
			manifestFlags(fs, o)
		},
	},
	{
		name: "secrets spark-secret", short: "write the spark-secret Secret: the keystore password for Spark",
		long: sparkSecretHelp, run: runSparkSecret,
		flags: func(fs *flag.FlagSet, o *cmdOpts) {
			passwordFileFlag(fs, o)
			fs.StringVar(&o.secrets.passwordDir, "password-dir", "",
				"recover the password from key.txt and output.bin in `dir` (e.g. OUT/password)")
			manifestFlags(fs, o)
		},
	},
	{
		name: "secrets root-key", short: "write the kms-root-key Secret: a new random root key for kmsd",
		long: rootKeyHelp, run: runRootKey, flags: manifestFlags,
	},
}

const generateKeysHelp = `Makes a new key pair and a self-signed certificate, and writes what BigDL's
generate-keys.sh leaves in ./keys: DIR/keys/keystore.jks, keystore.pkcs12,
server.pem, server.crt, server.csr, server.key and keys.yaml (Secret ssl-keys,
for kubectl apply -f).

The certificate is for the names given with --dns and --ip (list every name
clients use: the Service names and the kmsIP); with none, for localhost,
127.0.0.1 and ::1. The password protects both keystores and their key entry.
It is read from --password-file (a file, or '-' for stdin; one trailing newline
is dropped) or, on a terminal, from a prompt that asks twice; never from the
command line. With --random-password kmsctl picks a random password and also
writes DIR/password/ (see 'secrets generate-password'), the only place the
password is kept: it is not printed.

Existing files are never replaced without --force: every component that
trusts the old certificate would stop working.`

const generatePasswordHelp = `Writes what BigDL's generate-password.sh leaves in ./password:
DIR/password/key.txt (an RSA-2048 key), output.bin (the password and a newline,
encrypted to key.txt) and password.yaml (Secret ssl-password). PPML recovers
the password with 'openssl rsautl -decrypt -inkey key.txt <output.bin'. Use
the password of 'secrets generate-keys'. It is read from --password-file (a
file, or '-' for stdin) or, on a terminal, from a prompt that asks twice.`

const kmsSecretHelp = `Writes Secret kms-secret with app_id, api_key, app_key (the api key again:
BigDL's Spark templates read that key) and policy_id (empty without
--policy-id) to --out FILE ('-' for stdout). With --policy-id the file also
holds Secret policy-id-secret, from which the Spark templates read
ATTESTATION_POLICYID. The api key is read from --api-key-file, never from the
command line.`

const sparkSecretHelp = `Writes Secret spark-secret (key secret) to --out FILE ('-' for stdout): the
same password as the keystores, for Spark's authentication. The password is
read from --password-file, recovered from the files of 'secrets
generate-password' with --password-dir (the way to use a --random-password),
or asked for on a terminal.`

const rootKeyHelp = `Makes a new random 32-byte root key and writes it as Secret kms-root-key (key
ROOT_KEY, the key in base64) to --out FILE ('-' for stdout). Start kmsd with
-root-key-env ROOT_KEY. Losing the root key loses every key in the store: keep
a copy offline.`

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func outFlag(fs *flag.FlagSet, o *cmdOpts, usage string) {
	fs.StringVar(&o.secrets.out, "out", "", usage)
}

func namespaceFlag(fs *flag.FlagSet, o *cmdOpts) {
	fs.StringVar(&o.secrets.namespace, "namespace", "", "Kubernetes `namespace` of the Secret (default: kubectl's context)")
}

func passwordFileFlag(fs *flag.FlagSet, o *cmdOpts) {
	fs.StringVar(&o.secrets.passwordFile, "password-file", "", "read the keystore password from `file`, '-' for stdin")
}

func forceFlag(fs *flag.FlagSet, o *cmdOpts) {
	fs.BoolVar(&o.force, "force", false, "replace existing files")
}

// manifestFlags are the flags of the commands that write one manifest.
func manifestFlags(fs *flag.FlagSet, o *cmdOpts) {
	outFlag(fs, o, "write the manifest to `file` (mode 0600), '-' for stdout")
	namespaceFlag(fs, o)
	forceFlag(fs, o)
}

func generateKeysFlags(fs *flag.FlagSet, o *cmdOpts) {
	s := &o.secrets
	outFlag(fs, o, "`dir`ectory to write keys/ (and password/) into")
	namespaceFlag(fs, o)
	fs.Var(&s.dns, "dns", "a DNS `name` of the server; repeat for more")
	fs.Var(&s.ips, "ip", "an IP `address` of the server; repeat for more")
	fs.StringVar(&s.cn, "cn", "", "subject common `name` (default: the first --dns, else the first --ip)")
	fs.StringVar(&s.key, "key", ppmlsecrets.RSA3072.String(), "key `type`: rsa-3072, rsa-4096 or ecdsa-p256")
	fs.IntVar(&s.days, "days", ppmlsecrets.DefaultValidityDays, "certificate validity in `days`")
	fs.StringVar(&s.pkcs12, "pkcs12", ppmlsecrets.PKCS12Legacy.String(),
		"keystore.pkcs12 `algorithms`: legacy (any Java 8) or modern (Java 8u301+)")
	passwordFileFlag(fs, o)
	fs.BoolVar(&s.randomPassword, "random-password", false, "use a random password and write it to password/ as well")
	forceFlag(fs, o)
}

// keysOptions turns the flags into ppmlsecrets options, without the
// password.
func (s *secretsOpts) keysOptions() (ppmlsecrets.KeysOptions, error) {
	opts := ppmlsecrets.KeysOptions{CommonName: s.cn, DNSNames: s.dns, ValidityDays: s.days}
	var err error
	if opts.Algorithm, err = ppmlsecrets.ParseKeyAlgorithm(s.key); err != nil {
		return opts, usageErrorf("--key: %v", err)
	}
	if opts.PKCS12, err = ppmlsecrets.ParsePKCS12Encoding(s.pkcs12); err != nil {
		return opts, usageErrorf("--pkcs12: %v", err)
	}
	if s.days < 1 {
		return opts, usageErrorf("--days must be at least 1")
	}
	for _, a := range s.ips {
		ip := net.ParseIP(a)
		if ip == nil {
			return opts, usageErrorf("--ip %q is not an IP address", a)
		}
		opts.IPAddresses = append(opts.IPAddresses, ip)
	}
	return opts, nil
}

// checkCommon checks what every secrets command needs: no arguments, --out
// and a valid --namespace.
func checkCommon(cmd string, o *cmdOpts, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd, args[0])
	}
	if o.secrets.out == "" {
		return usageErrorf("--out is required")
	}
	// A manifest fails on a bad namespace: find out before any slow key
	// generation or password prompt.
	if _, err := (&ppmlsecrets.Secret{Name: ppmlsecrets.SSLKeysSecretName, Namespace: o.secrets.namespace}).YAML(); err != nil {
		return usageErrorf("--namespace: %v", err)
	}
	return nil
}

var (
	keysFiles = []string{ppmlsecrets.FileKeystoreJKS, ppmlsecrets.FileKeystorePKCS12, ppmlsecrets.FileServerCRT,
		ppmlsecrets.FileServerCSR, ppmlsecrets.FileServerKey, ppmlsecrets.FileServerPEM, ppmlsecrets.KeysManifest}
	passwordFiles = []string{ppmlsecrets.FileKeyTxt, ppmlsecrets.FileOutputBin, ppmlsecrets.PasswordManifest}
)

func inDir(dir string, names []string) []string {
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join(dir, n)
	}
	return paths
}

func runGenerateKeys(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	s := &o.secrets
	if err := checkCommon("secrets generate-keys", o, args); err != nil {
		return err
	}
	opts, err := s.keysOptions()
	if err != nil {
		return err
	}
	if s.randomPassword && s.passwordFile != "" {
		return usageErrorf("--random-password and --password-file exclude each other")
	}
	keysDir, pwDir := filepath.Join(s.out, ppmlsecrets.KeysDir), filepath.Join(s.out, ppmlsecrets.PasswordDir)
	paths := inDir(keysDir, keysFiles)
	if s.randomPassword {
		paths = append(paths, inDir(pwDir, passwordFiles)...)
	}
	if err := refuseExisting(o.force, paths); err != nil {
		return err
	}
	if s.randomPassword {
		opts.Password = ppmlsecrets.RandomPassword()
	} else if opts.Password, err = o.keystorePassword(c); err != nil {
		return err
	}
	defer clear(opts.Password)

	keys, err := ppmlsecrets.GenerateKeys(opts)
	if err != nil {
		// The password is valid by now, so what is left to fail is a name,
		// an address or the lifetime from the flags.
		return usageErrorf("%v", err)
	}
	var pw *ppmlsecrets.Password
	if s.randomPassword {
		if pw, err = ppmlsecrets.GeneratePassword(opts.Password); err != nil {
			return err
		}
	}
	// Generation cannot be interrupted; an interruption during it still
	// leaves nothing on disk.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	// A random password goes first: keystores whose password is lost
	// must never be left behind.
	if pw != nil {
		if err := ppmlsecrets.WritePassword(s.out, pw, s.namespace, o.force); err != nil {
			return err
		}
	}
	if err := ppmlsecrets.WriteKeys(s.out, keys, s.namespace, o.force); err != nil {
		if pw != nil {
			return fmt.Errorf("%w (%s was written: use --force to try again)", err, pwDir)
		}
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s: %s (Secret %s)\n", keysDir, strings.Join(keysFiles, " "), ppmlsecrets.SSLKeysSecretName)
	printCertificate(c, keys.Certificate)
	if pw != nil {
		fmt.Fprintf(c.stdout, "wrote %s: %s (Secret %s); it holds the only copy of the password\n",
			pwDir, strings.Join(passwordFiles, " "), ppmlsecrets.SSLPasswordSecretName)
	}
	return nil
}

// printCertificate describes the new certificate: what an operator checks
// before applying the Secret (names, lifetime, fingerprint to compare with
// what clients see).
func printCertificate(c *cli, cert *x509.Certificate) {
	names := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	sum := sha256.Sum256(cert.Raw)
	fp := make([]string, len(sum))
	for i, b := range sum {
		fp[i] = fmt.Sprintf("%02X", b)
	}
	fmt.Fprintf(c.stdout, "certificate: CN=%s, names %s, %s key, valid until %s\n",
		cert.Subject.CommonName, strings.Join(names, " "), keyType(cert), cert.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(c.stdout, "SHA-256 fingerprint: %s\n", strings.Join(fp, ":"))
}

// keyType names the certificate's key as --key does.
func keyType(cert *x509.Certificate) string {
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ecdsa-" + strings.ToLower(strings.ReplaceAll(k.Curve.Params().Name, "-", ""))
	}
	return cert.PublicKeyAlgorithm.String()
}

func runGeneratePassword(ctx context.Context, c *cli, o *cmdOpts, args []string) error {
	s := &o.secrets
	if err := checkCommon("secrets generate-password", o, args); err != nil {
		return err
	}
	pwDir := filepath.Join(s.out, ppmlsecrets.PasswordDir)
	if err := refuseExisting(o.force, inDir(pwDir, passwordFiles)); err != nil {
		return err
	}
	password, err := o.keystorePassword(c)
	if err != nil {
		return err
	}
	defer clear(password)
	pw, err := ppmlsecrets.GeneratePassword(password)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	if err := ppmlsecrets.WritePassword(s.out, pw, s.namespace, o.force); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s: %s (Secret %s)\n", pwDir, strings.Join(passwordFiles, " "), ppmlsecrets.SSLPasswordSecretName)
	return nil
}

func runKMSSecret(_ context.Context, c *cli, o *cmdOpts, args []string) error {
	s := &o.secrets
	if err := checkCommon("secrets kms-secret", o, args); err != nil {
		return err
	}
	if s.appID == "" || s.apiKeyFile == "" {
		return usageErrorf("--app-id and --api-key-file are required")
	}
	if err := refuseExistingOut(o); err != nil {
		return err
	}
	apiKey, err := o.readSecretFile(c, s.apiKeyFile, "--api-key-file")
	if err != nil {
		return err
	}
	defer clear(apiKey)
	creds := ppmlsecrets.KMSCredentials{AppID: []byte(s.appID), APIKey: apiKey, PolicyID: []byte(s.policyID)}
	secrets := make([]*ppmlsecrets.Secret, 0, 2)
	sec, err := ppmlsecrets.KMSSecret(s.namespace, creds)
	if err != nil {
		return usageErrorf("%v", err)
	}
	secrets = append(secrets, sec)
	if s.policyID != "" {
		if sec, err = ppmlsecrets.PolicyIDSecret(s.namespace, creds.PolicyID); err != nil {
			return usageErrorf("%v", err)
		}
		secrets = append(secrets, sec)
	}
	return writeManifest(c, o, secrets...)
}

func runSparkSecret(_ context.Context, c *cli, o *cmdOpts, args []string) error {
	s := &o.secrets
	if err := checkCommon("secrets spark-secret", o, args); err != nil {
		return err
	}
	if s.passwordDir != "" && s.passwordFile != "" {
		return usageErrorf("--password-dir and --password-file exclude each other")
	}
	if err := refuseExistingOut(o); err != nil {
		return err
	}
	var password []byte
	var err error
	if s.passwordDir != "" {
		password, err = recoverPassword(s.passwordDir)
	} else {
		password, err = o.keystorePassword(c)
	}
	if err != nil {
		return err
	}
	defer clear(password)
	sec, err := ppmlsecrets.SparkSecret(s.namespace, password)
	if err != nil {
		return usageErrorf("%v", err)
	}
	return writeManifest(c, o, sec)
}

// rootKeyLen is the size of kmsd's root key (AES-256).
const rootKeyLen = 32

func runRootKey(_ context.Context, c *cli, o *cmdOpts, args []string) error {
	if err := checkCommon("secrets root-key", o, args); err != nil {
		return err
	}
	if err := refuseExistingOut(o); err != nil {
		return err
	}
	key := make([]byte, rootKeyLen)
	rand.Read(key) // never fails: crypto/rand crashes the program instead
	defer clear(key)
	sec, err := ppmlsecrets.RootKeySecret(o.secrets.namespace, key)
	if err != nil {
		return err
	}
	return writeManifest(c, o, sec)
}

// refuseExistingOut refuses an existing --out file without --force.
func refuseExistingOut(o *cmdOpts) error {
	if o.secrets.out == "-" {
		return nil
	}
	return refuseExisting(o.force, []string{o.secrets.out})
}

// writeManifest writes the Secrets, as one YAML stream, to --out (mode
// 0600, atomically) or to stdout for "-".
func writeManifest(c *cli, o *cmdOpts, secrets ...*ppmlsecrets.Secret) error {
	var data []byte
	names := make([]string, len(secrets))
	for i, s := range secrets {
		y, err := s.YAML()
		if err != nil {
			return usageErrorf("%v", err)
		}
		if i > 0 {
			data = append(data, "---\n"...)
		}
		data = append(data, y...)
		clear(y)
		names[i] = s.Name
	}
	defer clear(data)
	out := o.secrets.out
	if out == "-" {
		_, err := c.stdout.Write(data)
		return err
	}
	f := ppmlsecrets.File{Name: filepath.Base(out), Data: data, Mode: 0o600}
	if err := ppmlsecrets.WriteFiles(filepath.Dir(out), []ppmlsecrets.File{f}, o.force); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s (Secret %s)\n", out, strings.Join(names, ", Secret "))
	return nil
}

// refuseExisting fails if one of paths exists, unless force is set. The
// writers check again, atomically; this check comes first so that nobody
// types a password or waits for a key for nothing.
func refuseExisting(force bool, paths []string) error {
	if force {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists; use --force to replace it", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
