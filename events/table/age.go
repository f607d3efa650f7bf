package table

import (
	"strconv"
	"time"
)

// Age formats how long ago something happened the way kubectl's AGE column does: exact while
// it is short, coarser as it grows, two units at most ("45s", "3m2s", "17m", "4h5m", "30h",
// "2d3h", "41d", "2y8d"). A time slightly in the future (clock skew between machines) reads as
// "0s"; more than a second in the future is "<invalid>".
func Age(d time.Duration) string {
	secs := int64(d / time.Second)
	switch {
	case secs < -1:
		return "<invalid>"
	case secs < 0:
		return "0s"
	case secs < 120:
		return strconv.FormatInt(secs, 10) + "s"
	}
	mins := int64(d / time.Minute)
	hours := int64(d / time.Hour)
	days := hours / 24
	years := days / 365
	switch {
	case mins < 10:
		return two(mins, "m", secs%60, "s")
	case mins < 3*60:
		return strconv.FormatInt(mins, 10) + "m"
	case hours < 8:
		return two(hours, "h", mins%60, "m")
	case hours < 48:
		return strconv.FormatInt(hours, 10) + "h"
	case days < 8:
		return two(days, "d", hours%24, "h")
	case years < 2:
		return strconv.FormatInt(days, 10) + "d"
	case years < 8:
		return two(years, "y", days%365, "d")
	}
	return strconv.FormatInt(years, 10) + "y"
}

// two formats a major and a minor unit, leaving the minor out when it is zero.
func two(major int64, mu string, minor int64, nu string) string {
	s := strconv.FormatInt(major, 10) + mu
	if minor != 0 {
		s += strconv.FormatInt(minor, 10) + nu
	}
	return s
}

// since formats the age of t at now, or "<unknown>" for a missing time.
func since(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "<unknown>"
	}
	return Age(now.Sub(*t))
}
