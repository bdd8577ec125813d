package ppml_test

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/ppmlkms/kms/ppml"
)

// A data key as the KMS returns it (GET /dataKey/<name>), and its name.
const (
	dataKey     = "AAECAwQFBgcICQoLDA0ODw=="
	dataKeyName = "0f8fad5b-d9cb-469f-a165-70867728950e"
)

func Example() {
	var file bytes.Buffer
	if err := ppml.Encrypt(&file, strings.NewReader("id,amount\n1,42\n"), dataKey, dataKeyName); err != nil {
		log.Fatal(err)
	}

	// The reader learns the key name from the header, then asks for it.
	fetch := func(name string) (string, error) {
		fmt.Println("fetching data key", name)
		return dataKey, nil // a real program asks the KMS here
	}
	var plain bytes.Buffer
	if err := ppml.Decrypt(&plain, &file, ppml.FormatAuto, fetch); err != nil {
		log.Fatal(err) // and discards plain: it may hold unverified bytes
	}
	fmt.Print(plain.String())
	// Output:
	// fetching data key 0f8fad5b-d9cb-469f-a165-70867728950e
	// id,amount
	// 1,42
}

func ExampleDecryptDir() {
	root, err := os.MkdirTemp("", "ppml-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	input := filepath.Join(root, "input")
	os.Mkdir(input, 0o700)
	os.WriteFile(filepath.Join(input, "part-00000.csv"), []byte("a,b\n"), 0o600)

	// A directory that PPMLContext.read(AES_CBC_PKCS5PADDING) accepts.
	if _, err := ppml.EncryptDir(filepath.Join(root, "enc"), input, dataKey, dataKeyName); err != nil {
		log.Fatal(err)
	}
	meta, _ := os.ReadFile(filepath.Join(root, "enc", ppml.MetaFile))
	fmt.Print(string(meta))

	out, err := ppml.DecryptDir(filepath.Join(root, "dec"), filepath.Join(root, "enc"), ppml.FormatAuto, ppml.StaticKey(dataKey))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(filepath.Base(out[0]))
	// Output:
	// {
	//   "encryptedDataKey" : "0f8fad5b-d9cb-469f-a165-70867728950e"
	// }
	// part-00000.csv
}
