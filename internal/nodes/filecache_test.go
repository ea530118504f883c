package nodes

import (
	"io/fs"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// statInfo is a fs.FileInfo with what the cache compares.
type statInfo struct {
	fs.FileInfo
	size  int64
	mtime time.Time
	mode  fs.FileMode
}

func (s statInfo) Size() int64        { return s.size }
func (s statInfo) ModTime() time.Time { return s.mtime }
func (s statInfo) Mode() fs.FileMode  { return s.mode }

// The cache answers only for a file whose size, mtime and mode are what
// they were when it was read, within fullReadEvery, and until forgotten.
func TestFileCache(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	st := statInfo{size: 3, mtime: now.Add(-time.Hour), mode: 0o644}
	tests := []struct {
		name string
		// change alters the cache or what the node now reports, and
		// returns the fresh stat and the time of the read.
		change func(c *fileCache) (fs.FileInfo, time.Time)
		want   string // "" for a miss
	}{
		{"unchanged", func(*fileCache) (fs.FileInfo, time.Time) { return st, now }, "abc"},
		{"size", func(*fileCache) (fs.FileInfo, time.Time) { s := st; s.size = 4; return s, now }, ""},
		{"mtime", func(*fileCache) (fs.FileInfo, time.Time) { s := st; s.mtime = now; return s, now }, ""},
		{"mode", func(*fileCache) (fs.FileInfo, time.Time) { s := st; s.mode = 0o600; return s, now }, ""},
		{"read too long ago", func(*fileCache) (fs.FileInfo, time.Time) { return st, now.Add(fullReadEvery) }, ""},
		{"forgotten", func(c *fileCache) (fs.FileInfo, time.Time) { c.forget("/etc/a/b"); return st, now }, ""},
		{"a sibling forgotten", func(c *fileCache) (fs.FileInfo, time.Time) { c.forget("/etc/a/c"); return st, now }, "abc"},
		{"put again", func(c *fileCache) (fs.FileInfo, time.Time) {
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
	st := statInfo{mtime: now, mode: fs.ModeDir | 0o755}
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

// Connections holding the same content share one copy of it, and what get
// returns is the caller's own.
func TestFileCacheSharesContent(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	st := statInfo{size: 7, mtime: now, mode: 0o644}
	var a, b fileCache
	a.put("/etc/ca.crt", st, 0o644, []byte("the CA\n"), now)
	b.put("/etc/ca.crt", st, 0o644, []byte("the CA\n"), now)
	da, db := a.files[0].data.Value(), b.files[0].data.Value()
	if unsafe.StringData(da) != unsafe.StringData(db) {
		t.Error("two connections with the same content hold a copy each")
	}
	got, _, ok := a.get("/etc/ca.crt", st, now)
	if !ok {
		t.Fatal("miss")
	}
	got[0] = 'X'
	if again, _, _ := b.get("/etc/ca.crt", st, now); string(again) != "the CA\n" {
		t.Errorf("changing what get returned changed the cache: %q", again)
	}
}
