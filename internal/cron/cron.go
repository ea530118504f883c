// Package cron reads five-field cron schedules (minute hour day-of-month
// month day-of-week, in UTC) and tells when one next fires. It follows
// Vixie cron, the dialect of crontab(5) on Linux, so a schedule means here
// what it means to the people who write it.
package cron

import (
	"fmt"
	"strings"
)

// Schedule is a parsed cron schedule. The zero value matches nothing.
type Schedule struct {
	text                          string
	minute, hour, dom, month, dow uint64 // bit n set: value n matches
	domStar, dowStar              bool   // the field was written starting with "*"
}

// field describes one of the five fields.
type field struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i
}

var fields = [5]field{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day-of-month", min: 1, max: 31},
	{name: "month", min: 1, max: 12,
		names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	// 7 is Sunday too, as in every cron.
	{name: "day-of-week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// Parse reads a schedule such as "0 3 * * 0" or "*/15 8-18 * * mon-fri".
// Each field is "*", a value, a range "a-b", or either of those with a step
// ("*/15", "1-30/5"), and lists of them joined by commas; months and days
// of the week may be given by their three-letter English names. Errors name
// the field ("day-of-week: 8 is out of range 0-7"), so a caller can prefix
// them with where the schedule came from.
func Parse(text string) (*Schedule, error) {
	parts := strings.Fields(text)
	if len(parts) != len(fields) {
		return nil, fmt.Errorf("%q has %d fields, want 5: minute hour day-of-month month day-of-week", text, len(parts))
	}
	s := &Schedule{text: strings.Join(parts, " ")}
	bits := [5]*uint64{&s.minute, &s.hour, &s.dom, &s.month, &s.dow}
	for i, p := range parts {
		b, err := fields[i].parse(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fields[i].name, err)
		}
		*bits[i] = b
	}
	s.domStar, s.dowStar = strings.HasPrefix(parts[2], "*"), strings.HasPrefix(parts[4], "*")
	if s.dow&(1<<7) != 0 {
		s.dow = s.dow&^(1<<7) | 1 // Sunday
	}
	if err := s.checkReachable(); err != nil {
		return nil, err
	}
	return s, nil
}

// MustParse is Parse for schedules fixed in code; it panics on an error.
func MustParse(text string) *Schedule {
	s, err := Parse(text)
	if err != nil {
		panic(err)
	}
	return s
}

// String returns the schedule as written, with single spaces.
func (s *Schedule) String() string { return s.text }

// checkReachable refuses a schedule that can never fire, such as
// "0 0 30 2 *": its Next would have no answer. Only a day of the month
// restricted on its own (the day of the week "*") can be unreachable.
func (s *Schedule) checkReachable() error {
	if s.domStar || !s.dowStar {
		return nil
	}
	for m := 1; m <= 12; m++ {
		if s.month&(1<<m) == 0 {
			continue
		}
		if s.dom&(1<<(daysIn(m)+1)-1) != 0 {
			return nil
		}
	}
	return fmt.Errorf("day-of-month: no day of %q exists in any month of %q", s.fieldText(2), s.fieldText(3))
}

func (s *Schedule) fieldText(i int) string { return strings.Fields(s.text)[i] }

// daysIn is the longest month m can be (February: 29).
func daysIn(m int) int {
	switch m {
	case 2:
		return 29
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parse reads one field: a comma-separated list of terms.
func (f field) parse(text string) (uint64, error) {
	if text == "" {
		return 0, fmt.Errorf("empty")
	}
	var bits uint64
	for _, term := range strings.Split(text, ",") {
		b, err := f.term(term)
		if err != nil {
			return 0, err
		}
		bits |= b
	}
	return bits, nil
}

// term reads "*", "v", "a-b", "*/n" or "a-b/n".
func (f field) term(term string) (uint64, error) {
	rng, stepText, hasStep := strings.Cut(term, "/")
	lo, hi := f.min, f.max
	switch {
	case rng == "*":
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		var err error
		if lo, err = f.value(a); err != nil {
			return 0, err
		}
		if hi, err = f.value(b); err != nil {
			return 0, err
		}
		if lo > hi {
			return 0, fmt.Errorf("range %q runs backwards", rng)
		}
	default:
		if hasStep {
			return 0, fmt.Errorf("%q: a step needs a range or *, as in */%s or %s-%d/%s", term, stepText, rng, f.max, stepText)
		}
		v, err := f.value(rng)
		if err != nil {
			return 0, err
		}
		lo, hi = v, v
	}
	step := 1
	if hasStep {
		n, err := number(stepText)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("step %q is not a positive whole number", stepText)
		}
		step = n
	}
	var bits uint64
	for v := lo; v <= hi; v += step {
		bits |= 1 << v
	}
	return bits, nil
}

// value reads a number or, where the field has them, a name.
func (f field) value(text string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(text, n) {
			return f.min + i, nil
		}
	}
	v, err := number(text)
	if err != nil {
		if f.names != nil {
			return 0, fmt.Errorf("%q is neither a number nor a name (%s)", text, strings.Join(f.names, ", "))
		}
		return 0, fmt.Errorf("%q is not a number", text)
	}
	if v < f.min || v > f.max {
		return 0, fmt.Errorf("%d is out of range %d-%d", v, f.min, f.max)
	}
	return v, nil
}

// number reads a decimal of at most 3 digits: no sign, no spaces.
func number(text string) (int, error) {
	if text == "" || len(text) > 3 {
		return 0, fmt.Errorf("not a number")
	}
	n := 0
	for _, c := range text {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a number")
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}
