package stream_test

import (
	"bytes"
	"fmt"
	"log"
	"strings"

	"github.com/ppmlkms/kms/stream"
)

func Example() {
	key := bytes.Repeat([]byte{7}, 16) // a data key from the KMS
	ref := stream.KMSRef("ppml-primary", "dk-1")

	var file bytes.Buffer
	if err := stream.Encrypt(&file, strings.NewReader("hello, stream\n"), key, ref, nil); err != nil {
		log.Fatal(err)
	}

	fetch := func(ref stream.KeyRef) ([]byte, error) {
		fmt.Println("fetching", ref)
		return key, nil // a real program asks the KMS here
	}
	var plain bytes.Buffer
	if err := stream.Decrypt(&plain, &file, fetch); err != nil {
		log.Fatal(err) // and discards plain: it may be incomplete
	}
	fmt.Print(plain.String())
	// Output:
	// fetching kms primary key "ppml-primary" data key "dk-1"
	// hello, stream
}
