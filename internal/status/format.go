package status

import (
	"fmt"
	"time"

	"github.com/registry-operator/registry-operator/internal/state"
)

// Certificate states shown next to each certificate.
const (
	CertNotIssued  = "not issued"
	CertValid      = "valid"
	CertRenewalDue = "renewal due" // past its renewal time, not yet renewed
	CertExpired    = "expired"
)

// CertState says where a certificate stands in its lifetime at now.
func CertState(c state.CertInfo, now time.Time) string {
	switch {
	case c.NotAfter.IsZero():
		return CertNotIssued
	case !now.Before(c.NotAfter):
		return CertExpired
	case !c.RenewalTime.IsZero() && !now.Before(c.RenewalTime):
		return CertRenewalDue
	}
	return CertValid
}

const timeLayout = "2006-01-02 15:04:05 UTC"

// formatTime prints t in UTC, or "never" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(timeLayout)
}

// relative says how far t is from now: "3m ago", "in 2d 4h".
func relative(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	if d < 0 {
		return humanDuration(-d) + " ago"
	}
	return "in " + humanDuration(d)
}

// humanDuration keeps the two largest units: "2d 4h", "5m 3s", "0s".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	days := int64(d / (24 * time.Hour))
	h := int64(d/time.Hour) % 24
	m := int64(d/time.Minute) % 60
	s := int64(d/time.Second) % 60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// short abbreviates a hash or serial for tables; the full value is in JSON.
func short(s string) string {
	if len(s) <= 16 {
		return s
	}
	return s[:16] + "…"
}
