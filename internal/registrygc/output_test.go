package registrygc

import (
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/internal/nodes"
)

func TestParse(t *testing.T) {
	out := `test/one
test/two

3 blobs marked, 2 blobs and 1 manifests eligible for deletion
manifest eligible for deletion: sha256:aa
blob eligible for deletion: sha256:80
time="2026-12-01T23:02:08Z" level=info msg="Deleting blob: /docker/registry/v2/blobs/sha256/80/80" go.version=go1.19.8
blob eligible for deletion: sha256:93
time="2026-12-01T23:02:08Z" level=info msg="Deleting blob: /docker/registry/v2/blobs/sha256/93/93" go.version=go1.19.8
`
	r, err := Parse([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.Marked != 3 || r.EligibleBlobs != 2 || r.EligibleManifests != 1 || r.DeletedBlobs != 2 ||
		strings.Join(r.Eligible, ",") != "sha256:80,sha256:93" {
		t.Errorf("report %+v", r)
	}
	r, err = Parse([]byte("\n0 blobs marked, 0 blobs and 0 manifests eligible for deletion\n"))
	if err != nil || r.Marked != 0 || r.EligibleBlobs != 0 {
		t.Errorf("empty registry: %+v %v", r, err)
	}
	for _, tc := range []struct{ out, want string }{
		{"", "garbage-collect printed no summary"},
		{"test/one\nfailed to mark: filesystem: Path not found\n", `printed no summary ("failed to mark: filesystem: Path not found")`},
		{"x blobs marked, 1 blobs and 0 manifests eligible for deletion\n", "garbage-collect summary"},
		{"1 blobs marked, 2 blobs and 0 manifests eligible for deletion\nblob eligible for deletion: sha256:1\n",
			"summary counts 2 eligible blobs but lists 1"},
	} {
		if _, err := Parse([]byte(tc.out)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.out, err, tc.want)
		}
	}
}

func TestFreed(t *testing.T) {
	if got := FreedByDiskUsage(10<<20, 7<<20); got != 3<<20 {
		t.Errorf("du: %d", got)
	}
	if got := FreedByDiskUsage(7<<20, 10<<20); got != 0 {
		t.Errorf("du grew: %d", got)
	}
	before := nodes.FSUsage{Size: 64 << 20, Free: 10 << 20, Avail: 9 << 20}
	if got := FreedByStatVFS(before, nodes.FSUsage{Size: 64 << 20, Free: 13 << 20}); got != 3<<20 {
		t.Errorf("statvfs: %d", got)
	}
	if got := FreedByStatVFS(before, nodes.FSUsage{Size: 64 << 20, Free: 9 << 20}); got != 0 {
		t.Errorf("statvfs, less free: %d", got)
	}
	if _, err := ParseDiskUsage([]byte("x /srv\n")); err == nil {
		t.Error("ParseDiskUsage of garbage succeeded")
	}
	if n, err := ParseDiskUsage([]byte("4096\t/srv/data\n")); err != nil || n != 4096 {
		t.Errorf("ParseDiskUsage: %d %v", n, err)
	}
}
