package cron

import "time"

// Matches reports whether the schedule fires in t's minute (in UTC).
func (s *Schedule) Matches(t time.Time) bool {
	t = t.UTC()
	return s.minute&(1<<t.Minute()) != 0 && s.hour&(1<<t.Hour()) != 0 &&
		s.month&(1<<int(t.Month())) != 0 && s.dayMatches(t)
}

// dayMatches applies Vixie cron's rule: when both day fields are
// restricted (neither written starting with "*"), a day matching either
// one fires; otherwise a day must match both.
func (s *Schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<t.Day()) != 0
	dow := s.dow&(1<<int(t.Weekday())) != 0
	if s.domStar || s.dowStar {
		return dom && dow
	}
	return dom || dow
}

// searchYears bounds Next's search. The Gregorian calendar repeats every
// 400 years, and Parse accepts only schedules that fire on some date, so
// each fires within that span; the longest gaps are decades ("0 0 29 2
// */7": February 29th on a Sunday, 2088 then 2128).
const searchYears = 400

// Next returns the first minute strictly after after (in UTC) at which the
// schedule fires; the zero time for a zero Schedule.
func (s *Schedule) Next(after time.Time) time.Time {
	t := after.UTC().Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(searchYears, 0, 0)
	for t.Before(limit) {
		switch {
		case s.month&(1<<int(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case s.hour&(1<<t.Hour()) == 0:
			t = t.Truncate(time.Hour).Add(time.Hour)
		case s.minute&(1<<t.Minute()) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}
