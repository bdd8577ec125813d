package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/ppmlkms/kms/client"
)

// The BigDL workflow: a user, a primary key, a data key, then the key
// itself. kmsURL and kmsCAFile point at a kmsd started by TestMain, e.g.
// "https://kms.example:9876" and the server's tls.crt.
func Example() {
	ctx := context.Background()
	c, err := client.New(kmsURL, client.WithCAFile(kmsCAFile))
	if err != nil {
		log.Fatal(err)
	}
	const user, token = "example-alice", "a long random token"
	if err := c.CreateUser(ctx, user, token); err != nil {
		log.Fatal(err)
	}
	if err := c.CreatePrimaryKey(ctx, user, token, "pk"); err != nil {
		log.Fatal(err)
	}
	if err := c.CreateDataKey(ctx, user, token, "pk", "dk"); err != nil {
		log.Fatal(err)
	}
	key, err := c.DataKey(ctx, user, token, "pk", "dk")
	if err != nil {
		log.Fatal(err)
	}
	defer clear(key)
	fmt.Printf("data key: %d bytes\n", len(key))
	// Output:
	// data key: 16 bytes
}

// Errors are tested with errors.Is against the package's sentinels.
func Example_errors() {
	ctx := context.Background()
	c, err := client.New(kmsURL, client.WithCAFile(kmsCAFile))
	if err != nil {
		log.Fatal(err)
	}
	const user, token = "example-bob", "bob's token"
	if err := c.CreateUser(ctx, user, token); err != nil {
		log.Fatal(err)
	}
	err = c.CreateUser(ctx, user, "another token")
	fmt.Println("exists:", errors.Is(err, client.ErrExists))

	_, err = c.DataKey(ctx, user, token, "no-such-primary", "dk")
	fmt.Println("not found:", errors.Is(err, client.ErrNotFound))

	err = c.CreatePrimaryKey(ctx, user, "wrong token", "pk")
	fmt.Println("unauthorized:", errors.Is(err, client.ErrUnauthorized))

	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println("status:", e.Status, "code:", e.Code)
	}
	// Output:
	// exists: true
	// not found: true
	// unauthorized: true
	// status: 401 code: unauthorized
}

// DataKeyString returns the base64 text that BigDL PPML's file formats
// derive their keys from.
func ExampleClient_DataKeyString() {
	ctx := context.Background()
	c, err := client.New(kmsURL, client.WithCAFile(kmsCAFile))
	if err != nil {
		log.Fatal(err)
	}
	const user, token = "example-carol", "carol's token"
	for _, step := range []func() error{
		func() error { return c.CreateUser(ctx, user, token) },
		func() error { return c.CreatePrimaryKey(ctx, user, token, "pk") },
		func() error { return c.CreateDataKey(ctx, user, token, "pk", "dk") },
	} {
		if err := step(); err != nil {
			log.Fatal(err)
		}
	}
	s, err := c.DataKeyString(ctx, user, token, "pk", "dk")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(s), s[22:])
	// Output:
	// 24 ==
}

func ExampleClient_Status() {
	c, err := client.New(kmsURL, client.WithCAFile(kmsCAFile))
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Welcome)
	fmt.Println("ready:", st.Ready)
	// Output:
	// welcome to BigDL KMS Frontend
	// ready: true
}
