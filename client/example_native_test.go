package client_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/client"
)

// newUser registers user through the BigDL API (the only way to create a
// user) and returns a client of the native API with its credential.
func newUser(ctx context.Context, user, token string) *client.Client {
	c, err := client.New(kmsURL, client.WithCAFile(kmsCAFile), client.WithToken(user, token))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.CreateUser(ctx, user, token); err != nil {
		log.Fatal(err)
	}
	return c
}

// The native API: a primary key, and small secrets encrypted under it,
// bound to an encryption context that decryption must repeat.
func Example_native() {
	ctx := context.Background()
	c := newUser(ctx, "example-erin", "erin's long random token")

	key, err := c.CreateKey(ctx, "orders", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.Name, key.State, "version", key.LatestVersion)

	encCtx := map[string]string{"table": "orders", "row": "42"}
	ct, err := c.Encrypt(ctx, "orders", []byte("4111 1111 1111 1111"), encCtx)
	if err != nil {
		log.Fatal(err)
	}
	pt, err := c.Decrypt(ctx, "orders", ct.Ciphertext, encCtx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (key version %d)\n", pt.Plaintext, pt.KeyVersion)
	clear(pt.Plaintext)

	_, err = c.Decrypt(ctx, "orders", ct.Ciphertext, map[string]string{"table": "orders", "row": "43"})
	fmt.Println("other context:", errors.Is(err, client.ErrDecrypt))
	// Output:
	// orders enabled version 1
	// 4111 1111 1111 1111 (key version 1)
	// other context: true
}

// Envelope encryption: the KMS hands out a data key and its ciphertext;
// the caller encrypts its data locally, stores the data key's ciphertext
// beside it, and asks the KMS to decrypt that to read the data again.
func Example_envelope() {
	ctx := context.Background()
	c := newUser(ctx, "example-frank", "frank's long random token")
	if _, err := c.CreateKey(ctx, "files", nil); err != nil {
		log.Fatal(err)
	}
	encCtx := map[string]string{"file": "report.pdf"}

	dk, err := c.GenerateDataKey(ctx, "files", api.GenerateDataKeyRequest{KeySpec: "AES_256", Context: encCtx})
	if err != nil {
		log.Fatal(err)
	}
	sealed := seal(dk.Plaintext, []byte("quarterly numbers"))
	clear(dk.Plaintext)
	stored := dk.Ciphertext // kept beside sealed; useless without the KMS

	key, err := c.Decrypt(ctx, "files", stored, encCtx)
	if err != nil {
		log.Fatal(err)
	}
	defer clear(key.Plaintext)
	fmt.Printf("%s\n", open(key.Plaintext, sealed))
	// Output:
	// quarterly numbers
}

func seal(key, plaintext []byte) []byte {
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCMWithRandomNonce(block)
	return aead.Seal(nil, nil, plaintext, nil)
}

func open(key, ciphertext []byte) []byte {
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCMWithRandomNonce(block)
	pt, err := aead.Open(nil, nil, ciphertext, nil)
	if err != nil {
		log.Fatal(err)
	}
	return pt
}

// Rotation: new ciphertexts use the new version, old ones still decrypt
// until the minimum decryption version is raised; ReEncrypt moves them to
// the newest version first.
func ExampleClient_RotateKey() {
	ctx := context.Background()
	c := newUser(ctx, "example-grace", "grace's long random token")
	if _, err := c.CreateKey(ctx, "pk", nil); err != nil {
		log.Fatal(err)
	}
	old, err := c.Encrypt(ctx, "pk", []byte("old"), nil)
	if err != nil {
		log.Fatal(err)
	}
	key, err := c.RotateKey(ctx, "pk")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("latest version:", key.LatestVersion)

	rewrapped, err := c.ReEncrypt(ctx, "pk", api.ReEncryptRequest{Ciphertext: old.Ciphertext})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("rewrapped to version:", rewrapped.KeyVersion)

	if _, err := c.ConfigureKey(ctx, "pk", client.KeyConfig{MinDecryptionVersion: 2}); err != nil {
		log.Fatal(err)
	}
	_, err = c.Decrypt(ctx, "pk", old.Ciphertext, nil)
	fmt.Println("version 1 refused:", errors.Is(err, client.ErrInvalid))
	pt, err := c.Decrypt(ctx, "pk", rewrapped.Ciphertext, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("rewrapped: %s\n", pt.Plaintext)
	// Output:
	// latest version: 2
	// rewrapped to version: 2
	// version 1 refused: true
	// rewrapped: old
}

// Deletion waits 7 to 30 days, during which the key is unusable and the
// deletion can be cancelled; the key then comes back disabled.
func ExampleClient_ScheduleKeyDeletion() {
	ctx := context.Background()
	c := newUser(ctx, "example-heidi", "heidi's long random token")
	if _, err := c.CreateKey(ctx, "pk", nil); err != nil {
		log.Fatal(err)
	}
	key, err := c.ScheduleKeyDeletion(ctx, "pk", 7)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.State, key.DeletionDate.Sub(key.Created).Round(24*time.Hour))
	_, err = c.Encrypt(ctx, "pk", []byte("x"), nil)
	fmt.Println("unusable:", errors.Is(err, client.ErrDisabled))

	if key, err = c.CancelKeyDeletion(ctx, "pk"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.State)
	if key, err = c.EnableKey(ctx, "pk"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.State)
	// Output:
	// pending_deletion 168h0m0s
	// unusable: true
	// disabled
	// enabled
}

// An admin manages users and acts on a user's keys with ForOwner.
func ExampleClient_ForOwner() {
	ctx := context.Background()
	user := newUser(ctx, "example-ivan", "ivan's long random token")
	if _, err := user.CreateKey(ctx, "pk", nil); err != nil {
		log.Fatal(err)
	}
	admin, err := client.New(kmsURL, client.WithCAFile(kmsCAFile), client.WithAdminToken(adminName, adminToken))
	if err != nil {
		log.Fatal(err)
	}
	key, err := admin.ForOwner("example-ivan").DisableKey(ctx, "pk")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.Owner, key.Name, key.State)

	// A user cannot do the same to another user's keys.
	_, err = user.ForOwner("example-erin").DescribeKey(ctx, "orders")
	fmt.Println("forbidden:", errors.Is(err, client.ErrForbidden))

	u, err := admin.DisableUser(ctx, "example-ivan")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Name, "disabled:", u.Disabled)
	_, err = user.ListKeys(ctx)
	fmt.Println("refused:", errors.Is(err, client.ErrDisabled))
	// Output:
	// example-ivan pk disabled
	// forbidden: true
	// example-ivan disabled: true
	// refused: true
}

// SealStatus needs no credential: operators use it to unseal.
func ExampleClient_SealStatus() {
	c, err := client.New(kmsURL, client.WithCAFile(kmsCAFile))
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.SealStatus(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("mode:", st.Mode, "sealed:", st.Sealed)
	// Output:
	// mode: auto sealed: false
}
