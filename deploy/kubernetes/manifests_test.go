// Package kubernetes_test checks that the plain manifests in manifests/
// are what render.sh makes from the Helm chart today.
package kubernetes_test

import (
	"os"
	"os/exec"
	"testing"
)

// TestManifestsUpToDate runs render.sh --check; it needs helm (on PATH or
// in the sandbox cluster's /var/lib/k8s-sandbox/bin).
func TestManifestsUpToDate(t *testing.T) {
	if _, err := exec.LookPath("helm"); err != nil {
		if _, err := os.Stat("/var/lib/k8s-sandbox/bin/helm"); err != nil {
			t.Skip("helm not found: cannot render the chart")
		}
	}
	out, err := exec.Command("./render.sh", "--check").CombinedOutput()
	if err != nil {
		t.Fatalf("render.sh --check: %v\n%s", err, out)
	}
}
