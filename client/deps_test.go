package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the public SDK light: the api package and the
// standard library only, never internal/ or database/sql.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/ppmlkms/kms/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{"github.com/ppmlkms/kms/client": true, "github.com/ppmlkms/kms/api": true}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("client depends on %s; only ./api and the standard library are allowed", p)
		}
	}
	std, err := exec.Command("go", "list", "-deps", "github.com/ppmlkms/kms/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, std)
	}
	for _, p := range strings.Fields(string(std)) {
		if p == "database/sql" || strings.Contains(p, "/internal/") && strings.HasPrefix(p, "github.com/") {
			t.Errorf("client depends on %s", p)
		}
	}
}
