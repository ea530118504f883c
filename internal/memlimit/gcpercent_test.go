package memlimit

import (
	"runtime/debug"
	"testing"
)

func TestDecideGC(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want GCSetting
	}{
		{"", GCSetting{FromDefault, 25}},
		{"50", GCSetting{FromGOGCEnv, 50}},
		{"off", GCSetting{FromGOGCEnv, -1}},
		{"banana", GCSetting{FromGOGCEnv, 100}}, // the runtime's reading of a bad value
	} {
		if got := DecideGC(tc.env, 25); got != tc.want {
			t.Errorf("GOGC=%q: %+v, want %+v", tc.env, got, tc.want)
		}
	}
}

func TestConfigureGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	env := func(v string) func(string) string {
		return func(k string) string { return map[string]string{"GOGC": v}[k] }
	}
	if s := ConfigureGC(env(""), 25); s.Source != FromDefault {
		t.Errorf("no GOGC: %+v", s)
	}
	if cur := debug.SetGCPercent(100); cur != 25 {
		t.Errorf("no GOGC: the collector runs at %d, want the given default 25", cur)
	}
	// An explicit GOGC was applied by the runtime at start: left alone.
	if s := ConfigureGC(env("50"), 25); s != (GCSetting{FromGOGCEnv, 50}) {
		t.Errorf("GOGC=50: %+v", s)
	}
	if cur := debug.SetGCPercent(100); cur != 100 {
		t.Errorf("GOGC=50 in the environment: ConfigureGC changed the collector to %d", cur)
	}
}
