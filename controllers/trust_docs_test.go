package controllers

import (
	"os"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/internal/testing/marathonsim"
)

// TestCIAgentsDocAppDefinition: the Marathon app definition in
// docs/ci-agents.md is one Marathon accepts, and it mounts certs.d read-only.
func TestCIAgentsDocAppDefinition(t *testing.T) {
	b, err := os.ReadFile("../docs/ci-agents.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "```json\n")[1:]
	if len(blocks) != 1 {
		t.Fatalf("found %d JSON blocks in docs/ci-agents.md, want 1", len(blocks))
	}
	app, _, ok := strings.Cut(blocks[0], "```")
	if !ok {
		t.Fatal("unterminated JSON block")
	}
	if err := marathonsim.ValidateApp([]byte(app)); err != nil {
		t.Errorf("Marathon would refuse the example: %v", err)
	}
	if !strings.Contains(app, `"hostPath": "/etc/docker/certs.d",
        "mode": "RO"`) {
		t.Error("the example does not mount /etc/docker/certs.d read-only")
	}
}
