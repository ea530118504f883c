package memlimit

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// unlimitedV1 is where cgroup v1 values stop being limits: an unlimited
// memory.limit_in_bytes reads as the largest page-aligned int64
// (9223372036854771712), and no machine has 2^60 bytes.
const unlimitedV1 = 1 << 60

// membership is where the process sits in each hierarchy that can limit
// its memory, from /proc/self/cgroup ("ID:controllers:path" lines).
type membership struct {
	v2, v1 string // cgroup paths; "" when not a member
}

func parseCgroupFile(data []byte) (membership, error) {
	var m membership
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		id, rest, ok := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 || !strings.HasPrefix(p, "/") {
			return membership{}, fmt.Errorf("/proc/self/cgroup: malformed line %q (want ID:CONTROLLERS:/PATH)", line)
		}
		switch {
		case id == "0" && ctrls == "":
			m.v2 = p
		case hasWord(ctrls, "memory"):
			m.v1 = p
		}
	}
	return m, sc.Err()
}

// mount is one cgroup file system: the cgroup its root shows (root) and
// where it is mounted (point).
type mount struct{ root, point string }

// mounts are the cgroup file systems that can hold memory limits, from
// /proc/self/mountinfo.
type mounts struct {
	v2, v1 *mount // v1: the hierarchy with the memory controller
}

// parseMountinfo reads /proc/self/mountinfo lines ("ID PARENT MAJ:MIN ROOT
// POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS").
func parseMountinfo(data []byte) (mounts, error) {
	var ms mounts
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			return mounts{}, fmt.Errorf("/proc/self/mountinfo: malformed line %q", sc.Text())
		}
		m := &mount{root: unescape(f[3]), point: unescape(f[4])}
		switch {
		case g[0] == "cgroup2" && ms.v2 == nil:
			ms.v2 = m
		case g[0] == "cgroup" && hasWord(g[2], "memory") && ms.v1 == nil:
			ms.v1 = m
		}
	}
	return ms, sc.Err()
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and
// backslash ("\040").
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hasWord(list, w string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == w {
			return true
		}
	}
	return false
}

// parseV2Limit reads a cgroup v2 memory.max: bytes, or "max" (ok false).
func parseV2Limit(data []byte) (limit int64, ok bool, err error) {
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("memory.max: %q is neither a byte count nor \"max\"", s)
	}
	return n, true, nil
}

// parseV1Limit reads a cgroup v1 memory.limit_in_bytes: bytes, or a value
// past unlimitedV1 (or -1) for none (ok false).
func parseV1Limit(data []byte) (limit int64, ok bool, err error) {
	s := strings.TrimSpace(string(data))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("memory.limit_in_bytes: %q is not a byte count", s)
	}
	if n < 0 || n >= unlimitedV1 {
		return 0, false, nil
	}
	return n, true, nil
}
