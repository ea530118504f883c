package status

import (
	"fmt"

	"github.com/registry-operator/registry-operator/internal/state"
)

// maintenance is the Maintenance section, nil when the maintenance
// reconciler has published nothing (spec.maintenance absent).
func maintenance(store *state.Store) *state.Maintenance {
	m := store.Maintenance()
	if m.Status == "" && m.Schedule == "" && m.StorageSize == 0 {
		return nil
	}
	return &m
}

// StorageUsedPercent is the used share of the data filesystem, "" unknown.
func StorageUsedPercent(m state.Maintenance) string {
	if m.StorageSize == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f%%", 100*float64(m.StorageUsed)/float64(m.StorageSize))
}

// Bytes is n in binary units.
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (r *renderer) maintenance(m *state.Maintenance) {
	if m == nil {
		return
	}
	window := "closed"
	if m.WindowOpen {
		window = "OPEN (" + clean(m.RunID) + ", registry read-only)"
	}
	r.printf("\nMaintenance: schedule %s, next run %s, window %s\n", orDefault(clean(m.Schedule), "none"),
		when(m.Next, r.now), window)
	if m.Status != "" {
		r.printf("  %s\n", clean(m.Status))
	}
	if !m.LastRun.IsZero() {
		r.printf("  last run: %s, %s, freed %s\n", when(m.LastRun, r.now), clean(m.LastResult), Bytes(m.LastFreedBytes))
		if m.LastError != "" {
			r.printf("  last error: %s\n", clean(m.LastError))
		}
	}
	if m.StorageSize > 0 {
		r.printf("  storage on %s: %s of %s used (%s), %s free\n", orDefault(clean(m.DataAgent), "-"), Bytes(m.StorageUsed),
			Bytes(m.StorageSize), StorageUsedPercent(*m), Bytes(m.StorageFree))
	}
	for _, p := range m.Pending {
		r.printf("  pending: %s\n", clean(p))
	}
}
