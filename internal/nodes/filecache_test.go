package nodes

import (
	"io/fs"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// The cache answers only for a file whose size, mtime and mode are what
// they were when it was read, within fullReadEvery, and until forgotten.
func TestFileCache(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	st := fileStamp{size: 3, mtime: now.Add(-time.Hour).UnixNano(), mode: 0o644}
	tests := []struct {
		name string
		// change alters the cache or what the node now reports, and
		// returns the fresh stat and the time of the read.
		change func(c *fileCache) (fileStamp, time.Time)
		want   string // "" for a miss
	}{
		{"unchanged", func(*fileCache) (fileStamp, time.Time) { return st, now }, "abc"},
		{"size", func(*fileCache) (fileStamp, time.Time) { s := st; s.size = 4; return s, now }, ""},
		{"mtime", func(*fileCache) (fileStamp, time.Time) { s := st; s.mtime = now.UnixNano(); return s, now }, ""},
		{"mode", func(*fileCache) (fileStamp, time.Time) { s := st; s.mode = 0o600; return s, now }, ""},
		{"read too long ago", func(*fileCache) (fileStamp, time.Time) { return st, now.Add(fullReadEvery) }, ""},
		{"forgotten", func(c *fileCache) (fileStamp, time.Time) { c.forget("/etc/a/b"); return st, now }, ""},
		{"a sibling forgotten", func(c *fileCache) (fileStamp, time.Time) { c.forget("/etc/a/c"); return st, now }, "abc"},
		{"put again", func(c *fileCache) (fileStamp, time.Time) {
			c.put("/etc/a/b", st, 0o600, []byte("new"), now)
			return st, now
		}, "new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c fileCache
			c.put("/etc/a/b", st, 0o644, []byte("abc"), now)
			c.put("/etc/x", st, 0o644, []byte("xyz"), now)
			fresh, at := tc.change(&c)
			data, _, ok := c.get("/etc/a/b", fresh, at)
			if got := string(data); ok != (tc.want != "") || got != tc.want {
				t.Fatalf("get = %q, %v; want %q", got, ok, tc.want)
			}
			if data, _, ok := c.get("/etc/x", st, now); !ok || string(data) != "xyz" {
				t.Fatalf("another file's entry: %q, %v", data, ok)
			}
		})
	}
}

// Forgetting a path drops the listings of it and its ancestors, which the
// change it announces may alter, and no other.
func TestFileCacheForgetsAncestorListings(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	st := fileStamp{mtime: now.UnixNano(), mode: fs.ModeDir | 0o755}
	var c fileCache
	for _, d := range []string{"/", "/etc", "/etc/docker", "/etc/docker/certs.d", "/etc/dock", "/var"} {
		c.putDir(d, st, []FileInfo{{Name: "x"}}, now)
	}
	c.forget("/etc/docker/certs.d/r:5000/ca.crt")
	var kept []string
	for _, d := range []string{"/", "/etc", "/etc/docker", "/etc/docker/certs.d", "/etc/dock", "/var"} {
		if _, ok := c.getDir(d, st, now); ok {
			kept = append(kept, d)
		}
	}
	if want := []string{"/etc/dock", "/var"}; !slices.Equal(kept, want) {
		t.Fatalf("listings kept %v, want %v", kept, want)
	}
}

// Connections holding the same content share one copy of it, and get
// hands out that copy (a string: no caller can change it through get).
func TestFileCacheSharesContent(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	st := fileStamp{size: 7, mtime: now.UnixNano(), mode: 0o644}
	var a, b fileCache
	a.put("/etc/ca.crt", st, 0o644, []byte("the CA\n"), now)
	b.put("/etc/ca.crt", st, 0o644, []byte("the CA\n"), now)
	da, db := a.files[0].data.Value(), b.files[0].data.Value()
	if unsafe.StringData(da) != unsafe.StringData(db) {
		t.Error("two connections with the same content hold a copy each")
	}
	got, _, ok := a.get("/etc/ca.crt", st, now)
	if !ok || got != "the CA\n" {
		t.Fatalf("get = %q, %v", got, ok)
	}
	if unsafe.StringData(got) != unsafe.StringData(db) {
		t.Error("get copied the content")
	}
}
