package ppmlsecrets_test

import (
	"fmt"
	"log"
	"net"
	"os"

	"github.com/ppmlkms/kms/internal/ppmlsecrets"
)

// The equivalent of `generate-keys.sh` and `generate-password.sh PASSWORD`:
// ./out/keys/keys.yaml and ./out/password/password.yaml, ready for
// `kubectl apply -f`.
func Example() {
	password := ppmlsecrets.RandomPassword() // or read from a prompt, a file or stdin
	defer clear(password)

	keys, err := ppmlsecrets.GenerateKeys(ppmlsecrets.KeysOptions{
		Password:    password,
		DNSNames:    []string{"bigdl-kms-frontend-service", "bigdl-kms-frontend-service.bigdl-kms.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.10")}, // the seed's kmsIP
	})
	if err != nil {
		log.Fatal(err)
	}
	pw, err := ppmlsecrets.GeneratePassword(password)
	if err != nil {
		log.Fatal(err)
	}
	out, err := os.MkdirTemp("", "ppml-secrets")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(out)
	if err := ppmlsecrets.WriteKeys(out, keys, "bigdl-kms", false); err != nil {
		log.Fatal(err)
	}
	if err := ppmlsecrets.WritePassword(out, pw, "bigdl-kms", false); err != nil {
		log.Fatal(err)
	}

	// kmsd's side: recover the keystore password from the ssl-password files.
	got, err := ppmlsecrets.RecoverPassword(pw.KeyTxt, pw.OutputBin)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(got) == string(password))
	// Output: true
}

func ExampleRootKeySecret() {
	rootKey := make([]byte, 32) // use crypto/rand; a fixed key for the example
	for i := range rootKey {
		rootKey[i] = byte(0x40 + i)
	}
	s, err := ppmlsecrets.RootKeySecret("bigdl-kms", rootKey)
	if err != nil {
		log.Fatal(err)
	}
	y, err := s.YAML()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(y))
	// Output:
	// apiVersion: v1
	// kind: Secret
	// metadata:
	//   name: kms-root-key
	//   namespace: bigdl-kms
	// type: Opaque
	// data:
	//   ROOT_KEY: "UUVGQ1EwUkZSa2RJU1VwTFRFMU9UMUJSVWxOVVZWWlhXRmxhVzF4ZFhsOD0="
}

func ExampleKMSSecret() {
	s, err := ppmlsecrets.KMSSecret("", ppmlsecrets.KMSCredentials{
		AppID:    []byte("465227134889"),
		APIKey:   []byte("799072978028"),
		PolicyID: []byte("3f2c4a4e-policy"),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s)
	// Output: Secret kms-secret (keys api_key, app_id, app_key, policy_id)
}
