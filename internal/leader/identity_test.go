package leader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadDigestFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	d, err := ReadDigestFile(write("ok", "operator:pa:ss\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.User != "operator" || string(d.auth()) != "operator:pa:ss" {
		t.Errorf("digest = %q / %q, want operator and operator:pa:ss", d.User, d.auth())
	}
	if s := d.String(); strings.Contains(s, "pa:ss") {
		t.Errorf("String reveals the password: %q", s)
	}
	for name, content := range map[string]string{"nocolon": "operator-secret", "nouser": ":secret",
		"nopass": "operator:", "twolines": "operator:secret\nmore:lines"} {
		_, err := ReadDigestFile(write(name, content))
		if err == nil {
			t.Errorf("%s: accepted %q", name, content)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error reveals the content: %v", name, err)
		}
	}
	if _, err := ReadDigestFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "digestFile") {
		t.Errorf("missing file: err = %v, want one naming spec.leaderElection.digestFile", err)
	}
}

func TestPKIPathIsASiblingOfTheElection(t *testing.T) {
	for in, want := range map[string]string{"/registry-operator/leader": "/registry-operator/pki", "/leader": "/pki"} {
		if got := PKIPath(in); got != want {
			t.Errorf("PKIPath(%q) = %q, want %q", in, got, want)
		}
	}
}
