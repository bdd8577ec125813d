package kmstest

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// OpenAPI is docs/openapi.json as the route tests read it: the documented
// operations and the property names of the schemas.
type OpenAPI struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]OpenAPISchema `json:"schemas"`
	} `json:"components"`
}

// OpenAPISchema is an object schema's properties, nested ones included.
type OpenAPISchema struct {
	Properties map[string]OpenAPISchema `json:"properties"`
}

// LoadOpenAPI reads the OpenAPI document at path.
func LoadOpenAPI(t testing.TB, path string) *OpenAPI {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc OpenAPI
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return &doc
}

// Operations returns the sorted "METHOD path" of the documented
// operations whose path keep accepts.
func (d *OpenAPI) Operations(keep func(path string) bool) []string {
	var ops []string
	for p, methods := range d.Paths {
		if !keep(p) {
			continue
		}
		for m := range methods {
			ops = append(ops, strings.ToUpper(m)+" "+p)
		}
	}
	sort.Strings(ops)
	return ops
}

// Properties returns the sorted property names of schema name or, with
// nested, of the object properties found by following those names.
func (d *OpenAPI) Properties(name string, nested ...string) []string {
	s := d.Components.Schemas[name]
	for _, n := range nested {
		s = s.Properties[n]
	}
	props := make([]string, 0, len(s.Properties))
	for p := range s.Properties {
		props = append(props, p)
	}
	sort.Strings(props)
	return props
}

// JSONFields returns the sorted JSON names of the fields of struct v.
func JSONFields(v any) []string {
	rt := reflect.TypeOf(v)
	fields := make([]string, 0, rt.NumField())
	for i := range rt.NumField() {
		fields = append(fields, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
	}
	sort.Strings(fields)
	return fields
}
