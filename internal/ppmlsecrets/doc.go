// Package ppmlsecrets makes the Kubernetes Secrets that BigDL PPML components
// mount, in pure Go: no openssl, keytool or JDK is needed. It replaces
// BigDL's generate-keys.sh and generate-password.sh (see
// ../../../shared/spec/bigdl-compat.md §4 and docs/secrets.md).
//
// # The Secrets
//
//   - ssl-keys ([GenerateKeys], [Keys.Secret]): keystore.jks, keystore.pkcs12,
//     server.pem, server.crt, server.csr and server.key for one self-signed
//     server certificate. PPML mounts it at /ppml/keys: the BigDL KMS and the
//     Flink/serving frontends open keystore.pkcs12, Spark's spark.ssl.* and
//     Redis clients open keystore.jks (as key store and as trust store), the
//     attestation service reads server.crt and server.key.
//   - ssl-password ([GeneratePassword], [Password.Secret]): key.txt, an RSA
//     private key, and output.bin, the keystore password followed by "\n"
//     encrypted to that key with RSA PKCS #1 v1.5. PPML mounts it at
//     /ppml/password and recovers the password with
//     `openssl rsautl -inkey key.txt -decrypt <output.bin` inside a shell
//     command substitution; [RecoverPassword] does the same in Go.
//   - kms-secret ([KMSSecret]), policy-id-secret ([PolicyIDSecret]) and
//     spark-secret ([SparkSecret]): literals PPML's pod templates read.
//   - kms-root-key ([RootKeySecret]): the base64 root key kmsd reads as
//     BigDL's ROOT_KEY.
//
// [Secret.YAML] renders any of them as a manifest for `kubectl apply -f`.
//
// # Compatibility choices
//
// The password protects both keystores, for the store and for the key, as
// keytool -importkeystore leaves it and as Spark's spark.ssl.keyPassword
// expects. keystore.pkcs12 is written by default with the legacy algorithms
// (3DES, HMAC-SHA-1 MAC) that every Java 8 update reads; [PKCS12Modern]
// (AES-256, PBKDF2, HMAC-SHA-256) needs Java 8u301, 11.0.12 or later. Both
// keystores hold one PrivateKeyEntry under the alias [Alias], "1", which is
// what BigDL's `openssl pkcs12 -export` + `keytool -importkeystore` produced.
// Private keys are unencrypted PKCS #8 PEM ("PRIVATE KEY"), which OpenSSL 1.x
// and 3.x, Python's ssl module, netty and Java's PKCS8EncodedKeySpec all read.
//
// # Security limits
//
// These formats are what PPML reads; they are not strong. JKS protects its key
// with a SHA-1 based XOR stream, and the legacy PKCS #12 algorithms use 2048
// iterations of a SHA-1 KDF, so a keystore is only as safe as a high-entropy
// password makes it ([RandomPassword]). In any case the password travels next
// to the keystores: whoever can read the ssl-password Secret can read the
// password. Protect the Secrets themselves (RBAC, encryption at rest).
// PKCS #1 v1.5 decryption is a padding oracle when an attacker can submit
// ciphertexts; [RecoverPassword] runs once on local files, never on input
// from a network peer. Clearing secret bytes is best-effort: Go may have
// copied them, and the PKCS #12 encoder needs the password as a string.
//
// # Concurrency
//
// All functions are safe for concurrent use; they share no state.
package ppmlsecrets
