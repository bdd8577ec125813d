package httpapi

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ppmlkms/kms/api"
)

// TestOpenAPIMatchesRoutes checks docs/openapi.json against the real route
// table: every native route is documented and every documented operation
// exists, and the request schemas name exactly the fields the handlers
// decode.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var documented, served []string
	for p, ops := range doc.Paths {
		if isAttestPath(p) {
			continue // the attestation API's routes: internal/attestapi checks them
		}
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	for _, rt := range (&Handler{}).routes() {
		if rt.native {
			served = append(served, rt.method+" "+rt.pattern)
		}
	}
	sort.Strings(documented)
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
		var fields []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			fields = append(fields, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
		}
		var props []string
		for p := range doc.Components.Schemas[name].Properties {
			if name == "SealStatus" && p == "rotating_from" {
				continue // sent beside api.SealStatus while a rotation runs
			}
			props = append(props, p)
		}
		sort.Strings(fields)
		sort.Strings(props)
		if !reflect.DeepEqual(fields, props) {
			t.Errorf("schema %s: documented %v, Go type has %v", name, props, fields)
		}
	}
}

// isAttestPath reports whether an OpenAPI path belongs to the attestation
// API (package attestapi, mounted on the main listener).
func isAttestPath(p string) bool {
	return strings.HasPrefix(p, "/v1/attest/") || strings.HasSuffix(p, api.PathReleasePolicySuffix)
}
