package tap

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxEvents is the largest max a tap may ask for.
const MaxEvents = 100000

// Params are a tap's query parameters, shared by the proxy's admin
// endpoint and the control plane's API: path_prefix, method, authority,
// show_headers, max (events, 0: until the duration ends) and duration
// (a Go duration or seconds; default DefaultDuration, at most
// MaxDuration).
type Params struct {
	Filter   Filter
	Max      int
	Duration time.Duration
}

// ParseParams reads and checks a tap's query parameters; an error names
// the parameter and the reason.
func ParseParams(q url.Values) (Params, error) {
	p := Params{Duration: DefaultDuration}
	p.Filter.PathPrefix = q.Get("path_prefix")
	if p.Filter.PathPrefix != "" && !strings.HasPrefix(p.Filter.PathPrefix, "/") {
		return p, fmt.Errorf("path_prefix %q: must start with /", p.Filter.PathPrefix)
	}
	p.Filter.Method = q.Get("method")
	p.Filter.Authority = q.Get("authority")
	if v := q.Get("show_headers"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return p, fmt.Errorf("show_headers %q: want true or false", v)
		}
		p.Filter.ShowHeaders = b
	}
	if v := q.Get("max"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxEvents {
			return p, fmt.Errorf("max %q: want a whole number from 0 to %d", v, MaxEvents)
		}
		p.Max = n
	}
	if v := q.Get("duration"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			s, serr := strconv.ParseFloat(v, 64)
			if serr != nil {
				return p, fmt.Errorf("duration %q: want a duration such as 30s", v)
			}
			if !(s > 0 && s <= MaxDuration.Seconds()) {
				return p, fmt.Errorf("duration %q: want more than 0 and at most %s", v, MaxDuration)
			}
			d = time.Duration(s * float64(time.Second))
		}
		if d <= 0 || d > MaxDuration {
			return p, fmt.Errorf("duration %q: want more than 0 and at most %s", v, MaxDuration)
		}
		p.Duration = d
	}
	return p, nil
}

// Query encodes p as query parameters, as ParseParams reads them.
func (p Params) Query() url.Values {
	q := url.Values{}
	if p.Filter.PathPrefix != "" {
		q.Set("path_prefix", p.Filter.PathPrefix)
	}
	if p.Filter.Method != "" {
		q.Set("method", p.Filter.Method)
	}
	if p.Filter.Authority != "" {
		q.Set("authority", p.Filter.Authority)
	}
	if p.Filter.ShowHeaders {
		q.Set("show_headers", "true")
	}
	if p.Max > 0 {
		q.Set("max", strconv.Itoa(p.Max))
	}
	q.Set("duration", p.Duration.String())
	return q
}
