package cron

import (
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		spec, after, want string
	}{
		// 2026-12-01 is a Tuesday.
		{"0 3 * * 0", "2026-12-01 10:00", "2026-12-06 03:00"},
		{"0 3 * * 0", "2026-12-06 03:00", "2026-12-13 03:00"}, // strictly after
		{"0 3 * * 0", "2026-12-06 02:59", "2026-12-06 03:00"},
		{"0 3 * * 7", "2026-12-01 10:00", "2026-12-06 03:00"}, // 7 is Sunday
		{"0 3 * * sun", "2026-12-01 10:00", "2026-12-06 03:00"},
		{"*/15 * * * *", "2026-12-01 10:00", "2026-12-01 10:15"},
		{"*/15 * * * *", "2026-12-01 10:14", "2026-12-01 10:15"},
		{"*/15 * * * *", "2026-12-01 23:50", "2026-12-02 00:00"},
		{"* * * * *", "2026-12-31 23:59", "2027-01-01 00:00"},
		{"0 0 1 1 *", "2026-12-31 23:59", "2027-01-01 00:00"},
		{"30 4 31 * *", "2027-01-31 04:30", "2027-03-31 04:30"}, // February and no 31st skipped... and April
		{"0 0 29 2 *", "2027-01-01 00:00", "2028-02-29 00:00"},
		{"0 0 29 2 *", "2028-02-29 00:00", "2032-02-29 00:00"},
		{"0 0 29 2 *", "2096-03-01 00:00", "2104-02-29 00:00"}, // 2100 is no leap year
		// "*/7" starts with "*": February 29th and a Sunday, both.
		{"0 0 29 2 */7", "2026-12-01 00:00", "2032-02-29 00:00"},
		{"0 0 29 2 */7", "2088-03-01 00:00", "2128-02-29 00:00"},
		{"0 12 28-29 feb *", "2027-02-28 12:00", "2028-02-28 12:00"},
		{"0 0 * * *", "2028-02-28 00:00", "2028-02-29 00:00"},
		{"5 4 * * mon-fri", "2026-12-04 04:05", "2026-12-07 04:05"}, // Friday to Monday
		{"0 9-17/4 * * *", "2026-12-01 09:00", "2026-12-01 13:00"},
		{"0 9-17/4 * * *", "2026-12-01 17:00", "2026-12-02 09:00"},
		{"0,30 1,2 * * *", "2026-12-01 01:30", "2026-12-01 02:00"},
		{"0 0 * jan,jul *", "2026-12-01 00:00", "2027-01-01 00:00"},
		{"0 0 * JUL *", "2027-01-01 00:00", "2027-07-01 00:00"},
		// Vixie: both day fields restricted, either matches.
		{"0 0 13 * 5", "2026-12-01 00:00", "2026-12-04 00:00"}, // Friday the 4th comes before the 13th
		{"0 0 13 * 5", "2026-12-11 00:00", "2026-12-13 00:00"}, // the 13th, a Sunday
		// One day field starting with "*": both must match.
		{"0 0 */2 * 5", "2026-12-01 00:00", "2026-12-11 00:00"}, // the first odd-numbered Friday
		{"0 0 * * 5", "2026-12-01 00:00", "2026-12-04 00:00"},
		{"0 0 13 * *", "2026-12-01 00:00", "2026-12-13 00:00"},
		// Seconds are dropped, never rounded up.
		{"0 3 * * *", "2026-12-01 02:59", "2026-12-01 03:00"},
	} {
		s, err := Parse(tc.spec)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		got := s.Next(at(tc.after))
		if !got.Equal(at(tc.want)) {
			t.Errorf("%q after %s = %s, want %s", tc.spec, tc.after, got.Format(time.DateTime), tc.want)
		}
		if got.Location() != time.UTC {
			t.Errorf("%q: Next in %v, want UTC", tc.spec, got.Location())
		}
	}
}

// Next works in UTC whatever the zone of its argument, and a second past
// the minute is still inside that minute.
func TestNextZonesAndSeconds(t *testing.T) {
	s := MustParse("0 3 * * *")
	zone := time.FixedZone("UTC+5", 5*3600)
	got := s.Next(time.Date(2026, 12, 1, 7, 59, 0, 0, zone)) // 02:59 UTC
	if want := at("2026-12-01 03:00"); !got.Equal(want) {
		t.Errorf("Next = %s, want %s", got, want)
	}
	got = s.Next(at("2026-12-01 03:00").Add(30 * time.Second))
	if want := at("2026-12-02 03:00"); !got.Equal(want) {
		t.Errorf("Next from inside the firing minute = %s, want %s", got, want)
	}
	if !(&Schedule{}).Next(at("2026-12-01 00:00")).IsZero() {
		t.Error("the zero Schedule fires")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"0 3 * * 8", "day-of-week: 8 is out of range 0-7"},
		{"60 * * * *", "minute: 60 is out of range 0-59"},
		{"* 24 * * *", "hour: 24 is out of range 0-23"},
		{"* * 0 * *", "day-of-month: 0 is out of range 1-31"},
		{"* * 32 * *", "day-of-month: 32 is out of range 1-31"},
		{"* * * 13 *", "month: 13 is out of range 1-12"},
		{"* * * 0 *", "month: 0 is out of range 1-12"},
		{"0 3 * *", `"0 3 * *" has 4 fields, want 5: minute hour day-of-month month day-of-week`},
		{"0 3 * * * *", `"0 3 * * * *" has 6 fields, want 5: minute hour day-of-month month day-of-week`},
		{"", `"" has 0 fields, want 5: minute hour day-of-month month day-of-week`},
		{"@daily", `"@daily" has 1 fields, want 5: minute hour day-of-month month day-of-week`},
		{"x * * * *", `minute: "x" is not a number`},
		{"-1 * * * *", `minute: "" is not a number`},
		{"* * * foo *", `month: "foo" is neither a number nor a name (jan, feb, mar, apr, may, jun, jul, aug, sep, oct, nov, dec)`},
		{"* * * * funday", `day-of-week: "funday" is neither a number nor a name (sun, mon, tue, wed, thu, fri, sat)`},
		{"*/0 * * * *", `minute: step "0" is not a positive whole number`},
		{"*/x * * * *", `minute: step "x" is not a positive whole number`},
		{"5/15 * * * *", `minute: "5/15": a step needs a range or *, as in */15 or 5-59/15`},
		{"30-10 * * * *", `minute: range "30-10" runs backwards`},
		{"1,,2 * * * *", `minute: "" is not a number`},
		{"0 0 30 2 *", `day-of-month: no day of "30" exists in any month of "2"`},
		{"0 0 31 apr,jun,sep,nov *", `day-of-month: no day of "31" exists in any month of "apr,jun,sep,nov"`},
		{"0 0 1000 * *", `day-of-month: "1000" is not a number`},
		{"+5 * * * *", `minute: "+5" is not a number`},
	} {
		_, err := Parse(tc.spec)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %v, want %q", tc.spec, err, tc.want)
		}
	}
	// Restricted on both day fields, a day that never comes is harmless:
	// the day of the week still fires.
	if _, err := Parse("0 0 30 2 mon"); err != nil {
		t.Errorf("Parse(\"0 0 30 2 mon\"): %v", err)
	}
}

func TestString(t *testing.T) {
	if s := MustParse("  0  3 * *\t0 "); s.String() != "0 3 * * 0" {
		t.Errorf("String = %q", s)
	}
}
