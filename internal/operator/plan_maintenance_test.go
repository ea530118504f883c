package operator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/state"
)

func TestRenderMaintenance(t *testing.T) {
	next := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	pending := "garbage collection at 2026-12-06T03:00:00Z on 198.18.0.11: make the registry read-only ..."
	for name, tc := range map[string]struct {
		m       state.Maintenance
		changes int
		want    string
	}{
		"future run is not a change": {state.Maintenance{Schedule: "0 3 * * 0", Next: next,
			Status: "next garbage collection at 2026-12-06T03:00:00Z", Pending: []string{pending}}, 0,
			"  . would run: " + pending},
		"due run is a change": {state.Maintenance{Schedule: "0 3 * * 0", Next: next,
			Status: "garbage collection due; not started: reconcile.mode is report", Pending: []string{pending}}, 1,
			"  ~ " + pending},
		"none scheduled": {state.Maintenance{Status: "no garbage collection scheduled"}, 0,
			"  . no garbage collection scheduled"},
	} {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			n := renderMaintenance(func(f string, a ...any) { fmt.Fprintf(&out, f+"\n", a...) }, tc.m)
			if n != tc.changes || !strings.Contains(out.String(), tc.want) {
				t.Errorf("changes %d (want %d), output:\n%s", n, tc.changes, out.String())
			}
			if tc.m.Schedule != "" && !strings.Contains(out.String(), "next garbage collection 2026-12-06T03:00:00Z") {
				t.Errorf("the plan must show the next run:\n%s", out.String())
			}
		})
	}
}
