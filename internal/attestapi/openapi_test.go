package attestapi

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/attest"
	"github.com/ppmlkms/kms/internal/kmstest"
)

// TestOpenAPIMatchesRoutes checks the attestation part of docs/openapi.json
// against this package's route table (the BigDL attestation routes are not
// part of the native API and are not in it), and its request and response
// schemas against the Go types.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := kmstest.LoadOpenAPI(t, "../../docs/openapi.json")
	documented := doc.Operations(func(p string) bool {
		return strings.HasPrefix(p, "/v1/attest/") || strings.HasSuffix(p, api.PathReleasePolicySuffix)
	})
	var served []string
	for _, rt := range (&Handler{}).routes() {
		if !rt.bigdl {
			served = append(served, rt.method+" "+rt.pattern)
		}
	}
	sort.Strings(served)
	if !reflect.DeepEqual(documented, served) {
		t.Fatalf("docs/openapi.json and the attestation route table differ:\ndocumented %v\nserved     %v", documented, served)
	}
	for _, tc := range []struct {
		schema, field string // field: a nested object schema, or ""
		v             any
	}{
		{"AttestChallengeResponse", "", api.AttestChallengeResponse{}},
		{"AttestReleaseRequest", "", api.AttestReleaseRequest{}},
		{"AttestKeyRef", "", api.AttestKeyRef{}},
		{"AttestReleaseResponse", "", api.AttestReleaseResponse{}},
		{"ReleasePolicy", "", attest.Policy{}},
		{"ReleasePolicy", "sgx", attest.SGXPolicy{}},
		{"ReleasePolicy", "tdx", attest.TDXPolicy{}},
	} {
		var props []string
		if tc.field == "" {
			props = doc.Properties(tc.schema)
		} else {
			props = doc.Properties(tc.schema, tc.field)
		}
		if fields := kmstest.JSONFields(tc.v); !reflect.DeepEqual(fields, props) {
			t.Errorf("schema %s %s: documented %v, Go type has %v", tc.schema, tc.field, props, fields)
		}
	}
}
