package operator

import (
	"strings"
	"time"

	"github.com/registry-operator/registry-operator/internal/state"
)

// renderMaintenance writes the maintenance part of a plan: the next
// garbage collection and what it would do. A run that is due now, or a
// window recorded open, counts as a change; a run in the future does not
// (it is the schedule, not drift). It returns the number of changes.
func renderMaintenance(p func(string, ...any), m state.Maintenance) int {
	if m.Schedule == "" {
		p("  . no garbage collection scheduled")
	} else {
		next := "-"
		if !m.Next.IsZero() {
			next = m.Next.UTC().Format(time.RFC3339)
		}
		p("  . schedule %q, next garbage collection %s", m.Schedule, next)
	}
	if m.Status != "" {
		p("  . %s", m.Status)
	}
	due := strings.Contains(m.Status, " due") || m.WindowOpen
	n := 0
	for _, c := range m.Pending {
		if due || strings.Contains(c, "recorded open") {
			p("  ~ %s", c)
			n++
			continue
		}
		p("  . would run: %s", c)
	}
	if m.StorageSize > 0 {
		p("  . data filesystem on %s: %d of %d bytes used", m.DataAgent, m.StorageUsed, m.StorageSize)
	}
	return n
}
