package main

import (
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
