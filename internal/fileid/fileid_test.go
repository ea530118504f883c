package fileid

import (
	"os"
	"path/filepath"
	"testing"
)

func TestIDMovesWithTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := Stat(p)
	if a == (ID{}) || Stat(p) != a {
		t.Fatalf("an unchanged file: %+v then %+v", a, Stat(p))
	}
	if err := os.WriteFile(p, []byte("two\n"), 0o600); err != nil { // same size, in place
		t.Fatal(err)
	}
	if b := Stat(p); b == a {
		t.Error("an in-place write of the same size kept the ID")
	}
	q := p + ".new"
	if err := os.WriteFile(q, []byte("two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := Stat(p)
	if err := os.Rename(q, p); err != nil { // replaced
		t.Fatal(err)
	}
	if Stat(p) == before {
		t.Error("a file replaced by rename kept the ID")
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if Stat(p) != (ID{}) {
		t.Error("a missing file has a non-zero ID")
	}
}
