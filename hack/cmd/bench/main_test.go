package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestParseMemLimits(t *testing.T) {
	for _, c := range []struct {
		in    string
		nodes int
		want  []string
		err   string
	}{
		{"auto", 100, nil, ""},
		{"auto", 1000, strings.Split(defaultMemLimits, ","), ""},
		{"none", 1000, nil, ""},
		{" 40MiB, 1GiB ,123", 10, []string{"40MiB", "1GiB", "123"}, ""},
		{"48MB", 1000, nil, `"48MB" is not a GOMEMLIMIT value`},
		{"0MiB", 1000, nil, `"0MiB"`},
		{"48MiB;rm", 1000, nil, `"48MiB;rm"`},
	} {
		got, err := parseMemLimits(c.in, c.nodes)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseMemLimits(%q) error %v, want one containing %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("parseMemLimits(%q, %d) = %q, %v; want %q", c.in, c.nodes, got, err, c.want)
		}
	}
}

// A contender's peak RSS is its own, not the bench's: a child of a big Go
// process reports the parent's size in ru_maxrss.
func TestMeasurePeakRSSIsTheContenders(t *testing.T) {
	ballast := make([]byte, 100<<20)
	for i := range ballast {
		ballast[i] = 1
	}
	cmd := exec.Command("/bin/sleep", "0.6")
	s, err := measure(context.Background(), cmd, filepath.Join(t.TempDir(), "log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxRSSKiB <= 0 || s.MaxRSSKiB > 20<<10 {
		t.Errorf("sleep's peak RSS %d KiB, with this process holding %d MiB", s.MaxRSSKiB, len(ballast)>>20)
	}
	runtime.KeepAlive(ballast)
}

func TestParseCPULine(t *testing.T) {
	// A /proc/stat "cpu" line: user nice system idle iowait irq softirq
	// steal guest guest_nice, in USER_HZ.
	fs := strings.Fields("cpu  1000 20 300 90000 40 5 60 700 0 0")
	busy, steal := parseCPULine(fs)
	if want := (1000 + 20 + 300 + 5 + 60 + 700) / 100.0; busy != want {
		t.Errorf("busy = %g s, want %g s (idle and iowait left out)", busy, want)
	}
	if steal != 7 {
		t.Errorf("steal = %g s, want 7 s", steal)
	}
}
