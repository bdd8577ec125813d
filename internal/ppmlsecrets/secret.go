package ppmlsecrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Secret names and data keys that PPML components refer to. They are an
// interface: pod templates mount or reference them by these names.
const (
	SSLKeysSecretName     = "ssl-keys"     // mounted at /ppml/keys
	SSLPasswordSecretName = "ssl-password" // mounted at /ppml/password
	KMSSecretName         = "kms-secret"
	PolicyIDSecretName    = "policy-id-secret"
	SparkSecretName       = "spark-secret"
	RootKeySecretName     = "kms-root-key"

	FileKeystoreJKS    = "keystore.jks"
	FileKeystorePKCS12 = "keystore.pkcs12"
	FileServerPEM      = "server.pem"
	FileServerCRT      = "server.crt"
	FileServerCSR      = "server.csr"
	FileServerKey      = "server.key"
	FileKeyTxt         = "key.txt"
	FileOutputBin      = "output.bin"

	KeyAppID    = "app_id"
	KeyAPIKey   = "api_key"
	KeyAppKey   = "app_key"
	KeyPolicyID = "policy_id"
	KeySpark    = "secret"
	KeyRootKey  = "ROOT_KEY"
)

// rootKeyLen is the size of kmsd's root key (internal/rootkey.Len).
const rootKeyLen = 32

// Secret is a Kubernetes Secret of type Opaque. Its String method shows the
// name and the data keys, never the values.
type Secret struct {
	Name      string
	Namespace string // optional; empty leaves it to kubectl's context
	Data      map[string][]byte
}

// Secret returns the ssl-keys Secret holding the six files.
func (k *Keys) Secret(namespace string) *Secret {
	return filesSecret(SSLKeysSecretName, namespace, k.Files())
}

// Secret returns the ssl-password Secret holding key.txt and output.bin.
func (p *Password) Secret(namespace string) *Secret {
	return filesSecret(SSLPasswordSecretName, namespace, p.Files())
}

func filesSecret(name, namespace string, files []File) *Secret {
	s := &Secret{Name: name, Namespace: namespace, Data: make(map[string][]byte, len(files))}
	for _, f := range files {
		s.Data[f.Name] = f.Data
	}
	return s
}

// KMSCredentials are what an eHSM-style KMS enrolment returns (appid,
// apikey) and the attestation policy id registered for the enclave.
type KMSCredentials struct {
	AppID    []byte
	APIKey   []byte
	PolicyID []byte // optional
}

// KMSSecret returns the kms-secret Secret. BigDL documents creating it with
// `kubectl create secret generic kms-secret --from-literal=app_id=…
// --from-literal=api_key=… --from-literal=policy_id=…`, but its Spark pod
// templates read the API key from the key app_key; so the API key is stored
// under both api_key and app_key. policy_id is always present, empty when
// c.PolicyID is. It returns an error if AppID or APIKey is empty or any
// value spans lines.
func KMSSecret(namespace string, c KMSCredentials) (*Secret, error) {
	if len(c.AppID) == 0 || len(c.APIKey) == 0 {
		return nil, errors.New("kms-secret needs an app id and an api key")
	}
	for _, v := range [][]byte{c.AppID, c.APIKey, c.PolicyID} {
		if bytes.ContainsAny(v, "\r\n") {
			return nil, errors.New("kms-secret values must be one line")
		}
	}
	return &Secret{Name: KMSSecretName, Namespace: namespace, Data: map[string][]byte{
		KeyAppID:    c.AppID,
		KeyAPIKey:   c.APIKey,
		KeyAppKey:   c.APIKey,
		KeyPolicyID: c.PolicyID,
	}}, nil
}

// PolicyIDSecret returns the policy-id-secret Secret (key policy_id), from
// which BigDL's Spark pod templates read ATTESTATION_POLICYID. It returns an
// error if policyID is empty or spans lines.
func PolicyIDSecret(namespace string, policyID []byte) (*Secret, error) {
	if len(policyID) == 0 || bytes.ContainsAny(policyID, "\r\n") {
		return nil, errors.New("policy id must be one non-empty line")
	}
	return &Secret{Name: PolicyIDSecretName, Namespace: namespace, Data: map[string][]byte{KeyPolicyID: policyID}}, nil
}

// SparkSecret returns the spark-secret Secret (key secret) that BigDL's
// setup guide creates with the same password as the keystores. It returns
// an error if password fails [ValidatePassword]'s hard checks.
func SparkSecret(namespace string, password []byte) (*Secret, error) {
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	return &Secret{Name: SparkSecretName, Namespace: namespace, Data: map[string][]byte{KeySpark: password}}, nil
}

// RootKeySecret returns the kms-root-key Secret: key ROOT_KEY holds the
// 32-byte root key as standard base64 text (44 characters), the form of
// BigDL's ROOT_KEY variable and of kmsd's -root-key-env / -root-key-file.
// It returns an error if rootKey is not 32 bytes.
func RootKeySecret(namespace string, rootKey []byte) (*Secret, error) {
	if len(rootKey) != rootKeyLen {
		return nil, fmt.Errorf("root key must be %d bytes, got %d", rootKeyLen, len(rootKey))
	}
	text := []byte(base64.StdEncoding.EncodeToString(rootKey))
	return &Secret{Name: RootKeySecretName, Namespace: namespace, Data: map[string][]byte{KeyRootKey: text}}, nil
}

// String implements fmt.Stringer without revealing the values.
func (s *Secret) String() string {
	return fmt.Sprintf("Secret %s (keys %s)", s.Name, strings.Join(s.keys(), ", "))
}

func (s *Secret) keys() []string {
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// YAML renders s as a Kubernetes manifest: apiVersion v1, kind Secret, type
// Opaque, every value base64-encoded under data, keys sorted, so the same
// Secret always gives the same bytes. It returns an error if the name or
// namespace is not a valid Kubernetes name or a data key is not one
// Kubernetes accepts ([-._a-zA-Z0-9]+).
func (s *Secret) YAML() ([]byte, error) {
	if err := checkSubdomain("secret name", s.Name); err != nil {
		return nil, err
	}
	if s.Namespace != "" {
		if err := checkLabel("namespace", s.Namespace); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	b.WriteString("apiVersion: v1\nkind: Secret\nmetadata:\n")
	fmt.Fprintf(&b, "  name: %s\n", yamlScalar(s.Name))
	if s.Namespace != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", yamlScalar(s.Namespace))
	}
	b.WriteString("type: Opaque\n")
	keys := s.keys()
	if len(keys) == 0 {
		b.WriteString("data: {}\n")
		return b.Bytes(), nil
	}
	b.WriteString("data:\n")
	for _, k := range keys {
		if err := checkDataKey(k); err != nil {
			return nil, err
		}
		// Values are always quoted: base64 text such as "true", "null" or
		// "1234" would otherwise be read as a boolean, null or number.
		fmt.Fprintf(&b, "  %s: %q\n", yamlScalar(k), base64.StdEncoding.EncodeToString(s.Data[k]))
	}
	return b.Bytes(), nil
}

// yamlScalar returns s as a plain YAML scalar when both YAML 1.1 and 1.2
// read that as the same string, and double-quoted otherwise. s is known to
// be a Kubernetes name or data key, so strconv.Quote's escapes (printable
// ASCII) are valid YAML double-quoted escapes too.
func yamlScalar(s string) string {
	if plainSafe(s) {
		return s
	}
	return strconv.Quote(s)
}

func plainSafe(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_') {
		return false // digits, '.', '-' could start a number, ".inf", "-", "---"
	}
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return false
	}
	return true
}

func checkDataKey(k string) error {
	if k == "" || len(k) > 253 || k == "." || k == ".." {
		return fmt.Errorf("invalid secret data key %q", k)
	}
	for _, c := range k {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("invalid secret data key %q", k)
		}
	}
	return nil
}

// checkSubdomain checks an RFC 1123 subdomain, as Kubernetes object names.
func checkSubdomain(what, s string) error {
	if s == "" || len(s) > 253 {
		return fmt.Errorf("invalid %s %q", what, s)
	}
	for _, l := range strings.Split(s, ".") {
		if checkLabel(what, l) != nil {
			return fmt.Errorf("invalid %s %q: lower-case letters, digits, '-' and '.' only", what, s)
		}
	}
	return nil
}

// checkLabel checks an RFC 1123 label, as Kubernetes namespace names.
func checkLabel(what, s string) error {
	ok := s != "" && len(s) <= 63 && s[0] != '-' && s[len(s)-1] != '-'
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("invalid %s %q: at most 63 lower-case letters, digits and '-'", what, s)
	}
	return nil
}
