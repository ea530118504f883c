package registrygc

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/registry-operator/registry-operator/internal/nodes"
)

// FreedByStatVFS is the space a run freed, from the data file system's
// free space before and after it (nodes.Conn.StatVFS: no process on the
// node). Anything else writing to that file system at the same time
// counts too; a negative difference is reported as 0.
func FreedByStatVFS(before, after nodes.FSUsage) uint64 {
	if after.Free < before.Free {
		return 0
	}
	return after.Free - before.Free
}

// ScriptDiskUsage prints the bytes of disk the directory "$1" takes (du),
// for FreedByDiskUsage: exact for the registry's data, but it starts a
// process and walks every file.
const ScriptDiskUsage = `[ -d "$1" ] || { echo "$1 is not a directory" >&2; exit 1; }
exec du -s -B1 -x -- "$1"`

// ParseDiskUsage reads ScriptDiskUsage's output.
func ParseDiskUsage(out []byte) (uint64, error) {
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, fmt.Errorf("unexpected du output %q", out)
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("unexpected du output %q: %w", out, err)
	}
	return n, nil
}

// FreedByDiskUsage is the space a run freed, from ScriptDiskUsage's
// results before and after it.
func FreedByDiskUsage(before, after uint64) uint64 {
	if after > before {
		return 0
	}
	return before - after
}
