package cron

import (
	"testing"
	"time"
)

// FuzzNext: for every schedule Parse accepts and every instant, Next is
// strictly after it, fires (Matches), and no minute in between fires
// (checked minute by minute over the first two days).
func FuzzNext(f *testing.F) {
	for _, s := range []string{"0 3 * * 0", "*/15 * * * *", "0 0 29 2 *", "0 0 13 * 5", "0 0 */2 * 5",
		"5 4 * * mon-fri", "0 9-17/4 1,15 * *", "59 23 31 12 *", "* * * * *", "0 0 29 2 */7"} {
		f.Add(s, int64(1796083200)) // 2026-12-01
		f.Add(s, int64(4107542399)) // 2100-02-28 23:59:59
	}
	f.Fuzz(func(t *testing.T, spec string, unix int64) {
		s, err := Parse(spec)
		if err != nil {
			return
		}
		// Between 1970 and about 2400.
		after := time.Unix(unix%(430*365*86400), int64(unix%1e9)).UTC()
		if after.Before(time.Unix(0, 0)) {
			after = after.AddDate(430, 0, 0)
		}
		next := s.Next(after)
		if next.IsZero() {
			t.Fatalf("%q after %s: no next time", spec, after)
		}
		if !next.After(after) {
			t.Fatalf("%q after %s: next %s is not after it", spec, after, next)
		}
		if !s.Matches(next) || next.Second() != 0 || next.Nanosecond() != 0 {
			t.Fatalf("%q: next %s does not fire", spec, next)
		}
		end := min(next.Unix(), after.Add(48*time.Hour).Unix())
		for m := after.Truncate(time.Minute).Add(time.Minute); m.Unix() < end; m = m.Add(time.Minute) {
			if s.Matches(m) {
				t.Fatalf("%q after %s: %s fires before next %s", spec, after, m, next)
			}
		}
	})
}
