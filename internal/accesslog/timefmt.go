package accesslog

import (
	"strconv"
	"strings"
	"time"
)

// A start-time layout is compiled once into tokens; formatting walks them
// and appends digits, so %START_TIME(...)% costs no allocation per
// request. The specifiers are strftime's (Envoy formats with absl's
// FormatTime, which follows strftime in the C locale, always in UTC) plus
// Envoy's own %s (Unix seconds) and %f / %1f..%9f (fraction of the
// second, 9 digits by default, truncated), and absl's %E#S / %E*S
// (seconds with # or all significant fractional digits), %Ez and %E*z.

type tkind uint8

const (
	tLit          tkind = iota
	tYear               // %Y, %E4Y
	tYear2              // %y
	tCentury            // %C
	tMonth              // %m
	tDay                // %d
	tDaySpace           // %e
	tYearDay            // %j
	tHour               // %H
	tHourSpace          // %k
	tHour12             // %I
	tHour12Sp           // %l
	tMinute             // %M
	tSecond             // %S
	tSecFrac            // %E#S (n digits), %E*S (n < 0: significant digits)
	tFrac               // %f, %Nf
	tEpoch              // %s
	tAMPM               // %p
	tWeekdayShort       // %a
	tWeekdayLong        // %A
	tMonthShort         // %b, %h
	tMonthLong          // %B
	tWeekdayNum         // %w: 0 = Sunday
	tWeekdayNum1        // %u: 1 = Monday .. 7
)

type ttok struct {
	kind tkind
	n    int
	lit  string
}

// defaultTimeLayout is Envoy's START_TIME when no format is given:
// 2016-04-15T20:17:00.310Z.
const defaultTimeLayout = "%Y-%m-%dT%H:%M:%E3SZ"

var defaultTimeTokens = compileTime(defaultTimeLayout)

// compileTime turns a strftime-like layout into tokens. It never fails:
// like strftime, it copies a specifier it does not know as written.
func compileTime(layout string) []ttok {
	var toks []ttok
	var lit strings.Builder
	emit := func(t ttok) {
		if lit.Len() > 0 {
			toks = append(toks, ttok{kind: tLit, lit: lit.String()})
			lit.Reset()
		}
		toks = append(toks, t)
	}
	var expand func(string)
	expand = func(s string) {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c != '%' || i+1 >= len(s) {
				lit.WriteByte(c)
				continue
			}
			i++
			switch c = s[i]; c {
			case '%':
				lit.WriteByte('%')
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case 'Y':
				emit(ttok{kind: tYear})
			case 'y':
				emit(ttok{kind: tYear2})
			case 'C':
				emit(ttok{kind: tCentury})
			case 'm':
				emit(ttok{kind: tMonth})
			case 'd':
				emit(ttok{kind: tDay})
			case 'e':
				emit(ttok{kind: tDaySpace})
			case 'j':
				emit(ttok{kind: tYearDay})
			case 'H':
				emit(ttok{kind: tHour})
			case 'k':
				emit(ttok{kind: tHourSpace})
			case 'I':
				emit(ttok{kind: tHour12})
			case 'l':
				emit(ttok{kind: tHour12Sp})
			case 'M':
				emit(ttok{kind: tMinute})
			case 'S':
				emit(ttok{kind: tSecond})
			case 's':
				emit(ttok{kind: tEpoch})
			case 'f':
				emit(ttok{kind: tFrac, n: 9})
			case 'p':
				emit(ttok{kind: tAMPM})
			case 'a':
				emit(ttok{kind: tWeekdayShort})
			case 'A':
				emit(ttok{kind: tWeekdayLong})
			case 'b', 'h':
				emit(ttok{kind: tMonthShort})
			case 'B':
				emit(ttok{kind: tMonthLong})
			case 'w':
				emit(ttok{kind: tWeekdayNum})
			case 'u':
				emit(ttok{kind: tWeekdayNum1})
			case 'z':
				lit.WriteString("+0000") // always UTC
			case 'Z':
				lit.WriteString("UTC")
			case 'F':
				expand("%Y-%m-%d")
			case 'T', 'X':
				expand("%H:%M:%S")
			case 'D', 'x':
				expand("%m/%d/%y")
			case 'R':
				expand("%H:%M")
			case 'r':
				expand("%I:%M:%S %p")
			case 'c':
				expand("%a %b %e %H:%M:%S %Y")
			case '1', '2', '3', '4', '5', '6', '7', '8', '9':
				if i+1 < len(s) && s[i+1] == 'f' {
					emit(ttok{kind: tFrac, n: int(c - '0')})
					i++
				} else {
					lit.WriteByte('%')
					lit.WriteByte(c)
				}
			case 'E':
				if n := eSpec(s[i+1:], emit, &lit); n > 0 {
					i += n
				} else {
					lit.WriteString("%E")
				}
			default:
				lit.WriteByte('%')
				lit.WriteByte(c)
			}
		}
	}
	expand(layout)
	if lit.Len() > 0 {
		toks = append(toks, ttok{kind: tLit, lit: lit.String()})
	}
	return toks
}

// eSpec compiles the absl extension after "%E" (rest starts right after
// the E) and returns how many bytes of rest it used, 0 if none.
func eSpec(rest string, emit func(ttok), lit *strings.Builder) int {
	switch {
	case strings.HasPrefix(rest, "*S"):
		emit(ttok{kind: tSecFrac, n: -1})
		return 2
	case strings.HasPrefix(rest, "*z"):
		lit.WriteString("+00:00:00")
		return 2
	case strings.HasPrefix(rest, "z"):
		lit.WriteString("+00:00")
		return 1
	case strings.HasPrefix(rest, "4Y"):
		emit(ttok{kind: tYear})
		return 2
	case len(rest) >= 2 && rest[0] >= '0' && rest[0] <= '9' && rest[1] == 'S':
		emit(ttok{kind: tSecFrac, n: int(rest[0] - '0')})
		return 2
	}
	return 0
}

var (
	weekdayShort = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	monthShort   = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// appendTime formats t (in UTC) with compiled tokens.
func appendTime(b []byte, t time.Time, toks []ttok) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	for i := range toks {
		tk := &toks[i]
		switch tk.kind {
		case tLit:
			b = append(b, tk.lit...)
		case tYear:
			if year >= 0 && year < 10000 {
				b = appendPad(b, year, 4)
			} else {
				b = strconv.AppendInt(b, int64(year), 10)
			}
		case tYear2:
			b = appendPad(b, mod(year, 100), 2)
		case tCentury:
			b = appendPad(b, year/100, 2)
		case tMonth:
			b = appendPad(b, int(month), 2)
		case tDay:
			b = appendPad(b, day, 2)
		case tDaySpace:
			b = appendSpacePad(b, day)
		case tYearDay:
			b = appendPad(b, t.YearDay(), 3)
		case tHour:
			b = appendPad(b, hour, 2)
		case tHourSpace:
			b = appendSpacePad(b, hour)
		case tHour12:
			b = appendPad(b, hour12(hour), 2)
		case tHour12Sp:
			b = appendSpacePad(b, hour12(hour))
		case tMinute:
			b = appendPad(b, minute, 2)
		case tSecond:
			b = appendPad(b, sec, 2)
		case tSecFrac:
			b = appendPad(b, sec, 2)
			b = appendFraction(b, t.Nanosecond(), tk.n)
		case tFrac:
			b = appendPad(b, t.Nanosecond(), 9)
			b = b[:len(b)-(9-tk.n)]
		case tEpoch:
			b = strconv.AppendInt(b, t.Unix(), 10)
		case tAMPM:
			if hour < 12 {
				b = append(b, "AM"...)
			} else {
				b = append(b, "PM"...)
			}
		case tWeekdayShort:
			b = append(b, weekdayShort[t.Weekday()]...)
		case tWeekdayLong:
			b = append(b, t.Weekday().String()...)
		case tMonthShort:
			b = append(b, monthShort[month-1]...)
		case tMonthLong:
			b = append(b, month.String()...)
		case tWeekdayNum:
			b = append(b, byte('0'+t.Weekday()))
		case tWeekdayNum1:
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			b = append(b, byte('0'+wd))
		}
	}
	return b
}

// appendFraction appends "." and n fractional digits of ns; n < 0 means
// the significant digits only, and nothing at all for a whole second.
func appendFraction(b []byte, ns, n int) []byte {
	if n == 0 {
		return b
	}
	start := len(b)
	b = append(b, '.')
	b = appendPad(b, ns, 9)
	if n > 0 {
		return b[:start+1+n]
	}
	end := len(b)
	for end > start+1 && b[end-1] == '0' {
		end--
	}
	if end == start+1 {
		end = start
	}
	return b[:end]
}

func hour12(h int) int {
	if h %= 12; h == 0 {
		return 12
	}
	return h
}

func mod(a, m int) int {
	if a %= m; a < 0 {
		a += m
	}
	return a
}

// appendPad appends a non-negative v zero-padded to width digits.
func appendPad(b []byte, v, width int) []byte {
	if width == 2 && v >= 0 && v < 100 {
		return append(b, byte('0'+v/10), byte('0'+v%10))
	}
	if v < 0 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	var d [20]byte
	i := len(d)
	for v > 0 || i > len(d)-width {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[i:]...)
}

// appendSpacePad appends v (0..99) padded with a space to two columns.
func appendSpacePad(b []byte, v int) []byte {
	if v < 10 {
		return append(b, ' ', byte('0'+v))
	}
	return appendPad(b, v, 2)
}
