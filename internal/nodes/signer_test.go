package nodes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignerCacheSharesOneSignerPerKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "id_ed25519")
	pub1 := writeKey(t, file)
	var sc signerCache

	a, err := sc.load(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sc.load(file)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("the same key file gave two signers: each kept connection would hold its own key")
	}
	if string(a.PublicKey().Marshal()) != string(pub1.Marshal()) {
		t.Fatal("signer is not the file's key")
	}

	// A replaced key is used from the next dial on.
	pub2 := writeKey(t, file)
	c, err := sc.load(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.PublicKey().Marshal()) != string(pub2.Marshal()) {
		t.Fatal("the replaced key file was not read again")
	}

	// A broken or missing file is an error, never the key cached before.
	if err := os.WriteFile(file, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := sc.load(file); err == nil || !strings.Contains(err.Error(), "parse SSH private key") {
		t.Fatalf("broken key file: signer %v, error %v", s, err)
	}
	if s, err := sc.load(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "nodes.ssh.privateKeyFile") {
		t.Fatalf("missing key file: signer %v, error %v", s, err)
	}
}
