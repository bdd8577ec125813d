package ppmlsecrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSecretYAMLGolden(t *testing.T) {
	t.Parallel()
	s := &Secret{Name: "ssl-password", Namespace: "bigdl-kms", Data: map[string][]byte{
		"output.bin": {0xb6, 0x8b, 0x9e}, // base64 "toue"
		"key.txt":    []byte("k"),
		"1st":        []byte("true"),
		"yes":        {0x9e, 0xe9, 0x65}, // base64 "null"
		"ROOT_KEY":   nil,
	}}
	got, err := s.YAML()
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: v1
kind: Secret
metadata:
  name: ssl-password
  namespace: bigdl-kms
type: Opaque
data:
  "1st": "dHJ1ZQ=="
  ROOT_KEY: ""
  key.txt: "aw=="
  output.bin: "toue"
  "yes": "null"
`
	if string(got) != want {
		t.Errorf("YAML:\n%s\nwant:\n%s", got, want)
	}
	if base64.StdEncoding.EncodeToString([]byte{0x9e, 0xe9, 0x65}) != "null" {
		t.Error("fixture: want a value whose base64 is the YAML null word")
	}
	again, _ := s.YAML()
	if !bytes.Equal(got, again) {
		t.Error("YAML is not deterministic")
	}
	if strings.Contains(s.String(), "dHJ1ZQ") || s.String() != "Secret ssl-password (keys 1st, ROOT_KEY, key.txt, output.bin, yes)" {
		t.Errorf("String = %s", s)
	}
}

func TestSecretYAMLNoNamespaceNoData(t *testing.T) {
	t.Parallel()
	got, err := (&Secret{Name: "empty"}).YAML()
	if err != nil {
		t.Fatal(err)
	}
	want := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: empty\ntype: Opaque\ndata: {}\n"
	if string(got) != want {
		t.Errorf("YAML:\n%s\nwant:\n%s", got, want)
	}
}

func TestSecretYAMLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    Secret
		want string
	}{
		{"error/empty name", Secret{}, "secret name"},
		{"error/upper-case name", Secret{Name: "SSL-keys"}, "secret name"},
		{"error/name with space", Secret{Name: "ssl keys"}, "secret name"},
		{"error/name ends with dash", Secret{Name: "ssl-"}, "secret name"},
		{"error/long name", Secret{Name: strings.Repeat("a", 254)}, "secret name"},
		{"error/namespace with dot", Secret{Name: "a", Namespace: "big.dl"}, "namespace"},
		{"error/key with slash", Secret{Name: "a", Data: map[string][]byte{"a/b": nil}}, "data key"},
		{"error/key dot", Secret{Name: "a", Data: map[string][]byte{".": nil}}, "data key"},
		{"error/key with colon", Secret{Name: "a", Data: map[string][]byte{"a: b": nil}}, "data key"},
		{"error/key with newline", Secret{Name: "a", Data: map[string][]byte{"a\nb": nil}}, "data key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tt.s.YAML(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSecretConstructors(t *testing.T) {
	t.Parallel()
	k := mustKeys(t, rsaKeys)
	p := mustPassword(t)
	kms, err := KMSSecret("", KMSCredentials{AppID: []byte("465227134889"), APIKey: []byte("799072978028"), PolicyID: []byte("p-1")})
	if err != nil {
		t.Fatal(err)
	}
	kmsNoPolicy, err := KMSSecret("", KMSCredentials{AppID: []byte("a"), APIKey: []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := PolicyIDSecret("ns", []byte("p-1"))
	if err != nil {
		t.Fatal(err)
	}
	spark, err := SparkSecret("", []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	rootKey := make([]byte, 32)
	for i := range rootKey {
		rootKey[i] = byte(0x40 + i)
	}
	root, err := RootKeySecret("bigdl-kms", rootKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		s    *Secret
		keys []string
	}{
		{"ssl-keys", k.Secret("bigdl-kms"), []string{"keystore.jks", "keystore.pkcs12", "server.crt", "server.csr", "server.key", "server.pem"}},
		{"ssl-password", p.Secret(""), []string{"key.txt", "output.bin"}},
		{"kms-secret", kms, []string{"api_key", "app_id", "app_key", "policy_id"}},
		{"kms-secret", kmsNoPolicy, []string{"api_key", "app_id", "app_key", "policy_id"}},
		{"policy-id-secret", policy, []string{"policy_id"}},
		{"spark-secret", spark, []string{"secret"}},
		{"kms-root-key", root, []string{"ROOT_KEY"}},
	}
	for _, tt := range tests {
		if tt.s.Name != tt.name || !slices.Equal(tt.s.keys(), tt.keys) {
			t.Errorf("%s: got %s", tt.name, tt.s)
		}
		if _, err := tt.s.YAML(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	if string(kms.Data["app_key"]) != "799072978028" || string(kms.Data["api_key"]) != "799072978028" {
		t.Error("kms-secret: api key not under both api_key and app_key")
	}
	if v, ok := kmsNoPolicy.Data["policy_id"]; !ok || len(v) != 0 {
		t.Error("kms-secret: want an empty policy_id")
	}
	// The vector of bigdl-compat.md §2.
	if got := string(root.Data["ROOT_KEY"]); got != "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=" {
		t.Errorf("ROOT_KEY = %s", got)
	}

	for name, f := range map[string]func() error{
		"kms no app id":  func() error { _, err := KMSSecret("", KMSCredentials{APIKey: []byte("k")}); return err },
		"kms no api key": func() error { _, err := KMSSecret("", KMSCredentials{AppID: []byte("a")}); return err },
		"kms two lines": func() error {
			_, err := KMSSecret("", KMSCredentials{AppID: []byte("a"), APIKey: []byte("k\nx")})
			return err
		},
		"policy empty":         func() error { _, err := PolicyIDSecret("", nil); return err },
		"spark short password": func() error { _, err := SparkSecret("", []byte("abc")); return err },
		"root key 16 bytes":    func() error { _, err := RootKeySecret("", make([]byte, 16)); return err },
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestSecretYAMLParses reads the manifests back with a real YAML parser
// (PyYAML, YAML 1.1, the stricter of the two for plain scalars) and checks
// every value.
func TestSecretYAMLParses(t *testing.T) {
	t.Parallel()
	needTool(t, "python3")
	if _, _, err := runErr("", nil, "python3", "-c", "import yaml"); err != nil {
		t.Skip("python3 has no yaml module, skipping the check with a real YAML parser")
	}
	k := mustKeys(t, rsaKeys)
	tricky := &Secret{Name: "tricky", Data: map[string][]byte{
		"yes": {0x9e, 0xe9, 0x65}, "1": []byte("true"), "on": nil, "-x": []byte("1234"), "_a": {0xfb, 0xef, 0xff},
	}}
	for _, s := range []*Secret{k.Secret("bigdl-kms"), mustPassword(t).Secret(""), tricky} {
		y, err := s.YAML()
		if err != nil {
			t.Fatal(err)
		}
		out := run(t, "", y, "python3", "-c", `import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))`)
		var doc struct {
			APIVersion, Kind, Type string
			Metadata               map[string]string
			Data                   map[string]any
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.APIVersion != "v1" || doc.Kind != "Secret" || doc.Type != "Opaque" || doc.Metadata["name"] != s.Name || doc.Metadata["namespace"] != s.Namespace {
			t.Errorf("%s: header %+v", s.Name, doc)
		}
		if len(doc.Data) != len(s.Data) {
			t.Errorf("%s: %d data keys, want %d", s.Name, len(doc.Data), len(s.Data))
		}
		for key, v := range s.Data {
			got, ok := doc.Data[key].(string)
			if !ok || got != base64.StdEncoding.EncodeToString(v) {
				t.Errorf("%s: %s parsed as %#v", s.Name, key, doc.Data[key])
			}
		}
	}
}

// TestSecretYAMLMatchesKubectl renders the same Secret with ours and with
// `kubectl create secret generic --from-file --dry-run=client`, normalises
// both with `kubectl kustomize` (offline), and compares them.
func TestSecretYAMLMatchesKubectl(t *testing.T) {
	t.Parallel()
	needTool(t, "kubectl")
	p := mustPassword(t)
	files := writeTemp(t, p.Files())
	theirs := run(t, files, nil, "kubectl", "create", "secret", "generic", "ssl-password", "--namespace", "bigdl-kms",
		"--from-file=key.txt", "--from-file=output.bin", "--dry-run=client", "-o", "yaml")
	ours, err := p.Secret("bigdl-kms").YAML()
	if err != nil {
		t.Fatal(err)
	}
	normalise := func(manifest []byte) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "s.yaml"), manifest, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("resources:\n- s.yaml\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out := run(t, dir, nil, "kubectl", "kustomize", dir)
		// kubectl create adds creationTimestamp: null and leaves type out.
		out = strings.Replace(out, "  creationTimestamp: null\n", "", 1)
		return strings.Replace(out, "type: Opaque\n", "", 1)
	}
	if a, b := normalise(ours), normalise([]byte(theirs)); a != b {
		t.Errorf("ours:\n%s\nkubectl's:\n%s", a, b)
	}
}
