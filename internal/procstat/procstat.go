// Package procstat parses /proc/<pid>/stat, the one line the kernel writes
// for a process (proc(5)). The operator reads it from an agent over SFTP to
// tell one dockerd start from the next; the test rigs and benchmarks read it
// locally to find, time and measure processes. One parser keeps the one
// subtle rule in one place: the command name may hold spaces and
// parentheses, so fields resume after the last ')'.
package procstat

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is the part of the line callers use. Times are in clock ticks
// (USER_HZ, 100 on Linux).
type Stat struct {
	PID       int
	Comm      string // the command name, without the parentheses
	State     byte   // R, S, D, Z, T, ...
	PPID      int
	UTime     uint64 // field 14
	STime     uint64 // field 15
	CUTime    uint64 // field 16: reaped children's user time
	CSTime    uint64 // field 17
	StartTime uint64 // field 22: ticks after boot; tells a pid's reuse apart
}

// Zombie reports whether the process has exited and waits to be reaped.
func (s Stat) Zombie() bool { return s.State == 'Z' }

// ErrMalformed wraps every parse failure.
var ErrMalformed = errors.New("malformed /proc/<pid>/stat")

// Parse reads one /proc/<pid>/stat line.
func Parse(b []byte) (Stat, error) {
	s := string(b)
	l, r := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if l < 1 || r < l {
		return Stat{}, fmt.Errorf("%w: no (comm)", ErrMalformed)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:l]))
	if err != nil {
		return Stat{}, fmt.Errorf("%w: pid: %v", ErrMalformed, err)
	}
	// f[0] is field 3 (state); field n is f[n-3].
	f := strings.Fields(s[r+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("%w: %d fields after the command name, want at least 20", ErrMalformed, len(f))
	}
	st := Stat{PID: pid, Comm: s[l+1 : r], State: f[0][0]}
	ints := []struct {
		field int
		dst   *uint64
	}{{14, &st.UTime}, {15, &st.STime}, {16, &st.CUTime}, {17, &st.CSTime}, {22, &st.StartTime}}
	for _, i := range ints {
		if *i.dst, err = strconv.ParseUint(f[i.field-3], 10, 64); err != nil {
			return Stat{}, fmt.Errorf("%w: field %d: %v", ErrMalformed, i.field, err)
		}
	}
	if st.PPID, err = strconv.Atoi(f[1]); err != nil {
		return Stat{}, fmt.Errorf("%w: ppid: %v", ErrMalformed, err)
	}
	return st, nil
}

// Read parses the stat line of a local process; the error wraps
// fs.ErrNotExist when the process is gone.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return Parse(b)
}
