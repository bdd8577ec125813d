package httpapi

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/kmstest"
)

// TestOpenAPIMatchesRoutes checks docs/openapi.json against the real route
// table: every native route is documented and every documented operation
// exists, and the request schemas name exactly the fields the handlers
// decode.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := kmstest.LoadOpenAPI(t, "../../docs/openapi.json")
	// The attestation API's routes: internal/attestapi checks them.
	documented := doc.Operations(func(p string) bool { return !isAttestPath(p) })
	var served []string
	for _, rt := range (&Handler{}).routes() {
		if rt.native {
			served = append(served, rt.method+" "+rt.pattern)
		}
	}
	sort.Strings(served)
	if !reflect.DeepEqual(documented, served) {
		t.Fatalf("docs/openapi.json and the route table differ:\ndocumented %v\nserved     %v", documented, served)
	}
	for name, v := range map[string]any{
		"CreateKeyRequest": api.CreateKeyRequest{}, "ConfigureKeyRequest": api.ConfigureKeyRequest{},
		"ScheduleDeletionRequest": api.ScheduleDeletionRequest{}, "EncryptRequest": api.EncryptRequest{},
		"DecryptRequest": api.DecryptRequest{}, "ReEncryptRequest": api.ReEncryptRequest{},
		"GenerateDataKeyRequest": api.GenerateDataKeyRequest{}, "EncryptBatchRequest": api.EncryptBatchRequest{},
		"DecryptBatchRequest": api.DecryptBatchRequest{}, "InitRequest": api.InitRequest{}, "Key": api.Key{},
		"SealStatus": api.SealStatus{}, "Share": api.Share{},
	} {
		props := doc.Properties(name)
		if name == "SealStatus" {
			// sent beside api.SealStatus while a rotation runs
			props = slices.DeleteFunc(props, func(p string) bool { return p == "rotating_from" })
		}
		if fields := kmstest.JSONFields(v); !reflect.DeepEqual(fields, props) {
			t.Errorf("schema %s: documented %v, Go type has %v", name, props, fields)
		}
	}
}

// isAttestPath reports whether an OpenAPI path belongs to the attestation
// API (package attestapi, mounted on the main listener).
func isAttestPath(p string) bool {
	return strings.HasPrefix(p, "/v1/attest/") || strings.HasSuffix(p, api.PathReleasePolicySuffix)
}
