package gcwindow

import (
	"strings"
	"testing"
)

func TestWindowRecordRoundTrip(t *testing.T) {
	w := *window(PhaseCollecting)
	w.Version = 0 // Encode sets it
	b, err := Encode(w)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"version":1`) || !strings.Contains(string(b), `"deadline":"2026-12-06T03:30:00Z"`) {
		t.Errorf("record %s", b)
	}
	got, err := Decode(b)
	w.Version = Version
	if err != nil || got != w {
		t.Errorf("decoded %+v, %v; want %+v", got, err, w)
	}
}

func TestWindowRecordRefused(t *testing.T) {
	for _, tc := range []struct{ record, want string }{
		{`{"version":2,"runID":"gc-1","phase":"opening","openedAt":"2026-12-06T03:00:00Z","deadline":"2026-12-06T03:30:00Z"}`,
			"GC window record has version 2, this operator reads version 1"},
		{`{"runID":"gc-1"}`, "GC window record has version 0, this operator reads version 1"},
		{`{"version":1,"runID":"gc-1","phase":"sleeping","openedAt":"2026-12-06T03:00:00Z","deadline":"2026-12-06T03:30:00Z"}`,
			`GC window record gc-1: unknown phase "sleeping"`},
		{`{"version":1,"runID":"gc-1","phase":"opening","openedAt":"2026-12-06T03:00:00Z"}`,
			`GC window record "gc-1": runID, openedAt and deadline are required`},
		{`{"version":1,`, "GC window record: unexpected end of JSON input"},
	} {
		if _, err := Decode([]byte(tc.record)); err == nil || err.Error() != tc.want {
			t.Errorf("Decode(%s) = %v, want %q", tc.record, err, tc.want)
		}
	}
}
