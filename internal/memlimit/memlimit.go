// Package memlimit sets Go's soft memory limit (the GC's target ceiling)
// from the memory limit of the container the process runs in, and the
// collector's GOGC for the long-running operator (gcpercent.go).
//
// Marathon runs the operator with a cgroup memory limit (the app's mem).
// Go's collector knows nothing of it: by default it lets the heap grow to
// twice what survived the last collection (GOGC=100), so a burst of
// garbage, such as the first pass dialling hundreds of agents, can take
// the process past the limit and get it killed while the live heap is far
// below it. A soft limit makes the collector work harder as the heap nears
// it, instead.
package memlimit

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"runtime/debug"
	"strings"
)

// Fraction is the share of the cgroup limit given to Go: the rest is for
// what the limit counts and Go does not (the binary's mapped text, page
// cache charged to the cgroup, memory outside the Go heap).
const Fraction = 0.9

// Source says where a Setting came from.
type Source string

const (
	// FromEnv: GOMEMLIMIT was set, and the runtime applied it ("off"
	// included).
	FromEnv Source = "GOMEMLIMIT"
	// FromCgroup: Fraction of the container's limit.
	FromCgroup Source = "cgroup"
	// None: no GOMEMLIMIT and no cgroup limit; the collector runs on GOGC
	// alone.
	None Source = "none"
)

// Setting is the soft limit the process runs with and why.
type Setting struct {
	Source Source
	// Bytes is the soft limit; 0 with None, or GOMEMLIMIT=off.
	Bytes int64
	// Cgroup is the container's limit and File where it was read; 0 and
	// "" when none was found (or GOMEMLIMIT made looking needless).
	Cgroup int64
	File   string
}

// Decide picks the setting: an explicit GOMEMLIMIT wins, then Fraction of
// the cgroup limit (cgroup 0: none found), then none.
func Decide(gomemlimit string, cgroup int64, file string) Setting {
	if gomemlimit != "" {
		return Setting{Source: FromEnv}
	}
	if cgroup <= 0 {
		return Setting{Source: None}
	}
	return Setting{Source: FromCgroup, Bytes: int64(float64(cgroup) * Fraction), Cgroup: cgroup, File: file}
}

// Configure applies the setting for this process: GOMEMLIMIT (from getenv)
// if set, otherwise Fraction of the cgroup limit found under root (the
// file system's "/": os.DirFS("/")). The error says why no cgroup limit
// could be read; the setting is then None, and the process runs as
// before.
func Configure(getenv func(string) string, root fs.FS) (Setting, error) {
	env := getenv("GOMEMLIMIT")
	var limit int64
	var file string
	var err error
	if env == "" {
		limit, file, err = Detect(root)
	}
	s := Decide(env, limit, file)
	switch s.Source {
	case FromCgroup:
		debug.SetMemoryLimit(s.Bytes)
	case FromEnv:
		if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
			s.Bytes = cur
		}
	}
	return s, err
}

// Detect returns the memory limit of the process's cgroup, the smallest
// of its own and its ancestors' up to the cgroup file system's root, and
// the file it was read from; 0 when there is none. cgroup v1's memory
// controller is used when the process is in one (hybrid hosts mount v2
// without it), otherwise v2.
func Detect(root fs.FS) (int64, string, error) {
	b, err := fs.ReadFile(root, "proc/self/cgroup")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", nil // not Linux, or no /proc: nothing limits us that we can see
	}
	if err != nil {
		return 0, "", fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	member, err := parseCgroupFile(b)
	if err != nil {
		return 0, "", err
	}
	b, err = fs.ReadFile(root, "proc/self/mountinfo")
	if err != nil {
		return 0, "", fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	ms, err := parseMountinfo(b)
	if err != nil {
		return 0, "", err
	}
	switch {
	case member.v1 != "" && ms.v1 != nil:
		return smallest(root, *ms.v1, member.v1, "memory.limit_in_bytes", parseV1Limit)
	case member.v2 != "" && ms.v2 != nil:
		return smallest(root, *ms.v2, member.v2, "memory.max", parseV2Limit)
	}
	return 0, "", nil
}

// smallest walks from the cgroup's directory up to the mount point and
// returns the smallest limit set on the way.
func smallest(root fs.FS, m mount, cgroup, name string, parse func([]byte) (int64, bool, error)) (int64, string, error) {
	rel := cgroup
	if m.root != "/" {
		// A container without its own cgroup namespace sees its cgroup
		// mounted at the mount point ("/docker/ID" as root).
		r, ok := strings.CutPrefix(cgroup, m.root)
		if !ok || (r != "" && !strings.HasPrefix(r, "/")) {
			return 0, "", nil // the process's cgroup is not under this mount: nothing to read
		}
		rel = r
	}
	var best int64
	var file string
	for dir := path.Join(m.point, rel); ; dir = path.Dir(dir) {
		f := path.Join(dir, name)
		b, err := fs.ReadFile(root, strings.TrimPrefix(f, "/"))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return 0, "", fmt.Errorf("read %s: %w", f, err)
		default:
			n, ok, err := parse(b)
			if err != nil {
				return 0, "", fmt.Errorf("%s: %w", f, err)
			}
			if ok && (best == 0 || n < best) {
				best, file = n, f
			}
		}
		if dir == m.point || dir == "/" {
			return best, file, nil
		}
	}
}
