package attestapi

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ppmlkms/kms/api"
	"github.com/ppmlkms/kms/internal/attest"
)

// TestOpenAPIMatchesRoutes checks the attestation part of docs/openapi.json
// against this package's route table (the BigDL attestation routes are not
// part of the native API and are not in it), and its request and response
// schemas against the Go types.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var documented, served []string
	for p, ops := range doc.Paths {
		if !strings.HasPrefix(p, "/v1/attest/") && !strings.HasSuffix(p, api.PathReleasePolicySuffix) {
			continue
		}
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	for _, rt := range (&Handler{}).routes() {
		if !rt.bigdl {
			served = append(served, rt.method+" "+rt.pattern)
		}
	}
	sort.Strings(documented)
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
		var fields, props []string
		rt := reflect.TypeOf(tc.v)
		for i := range rt.NumField() {
			fields = append(fields, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
		}
		s := doc.Components.Schemas[tc.schema]
		if tc.field == "" {
			for p := range s.Properties {
				props = append(props, p)
			}
		} else {
			for p := range s.Properties[tc.field].Properties {
				props = append(props, p)
			}
		}
		sort.Strings(fields)
		sort.Strings(props)
		if !reflect.DeepEqual(fields, props) {
			t.Errorf("schema %s %s: documented %v, Go type has %v", tc.schema, tc.field, props, fields)
		}
	}
}
