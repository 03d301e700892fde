package tapwire

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits of a tap's parameters.
const (
	// MaxEvents is the largest max a tap may ask for.
	MaxEvents = 100000
	// DefaultDuration is how long a tap lasts unless it asks otherwise.
	DefaultDuration = 60 * time.Second
	// MaxDuration is the longest a tap may last.
	MaxDuration = 10 * time.Minute
)

// Redacted replaces a header value that is not shown.
const Redacted = "[redacted]"

// Event is one tapped request, as the admin endpoint streams it (one JSON
// object per line) and the control plane merges it.
type Event struct {
	Time time.Time `json:"time"`
	// Proxy is the node id of the proxy that saw the request; the
	// control plane sets it when it merges the streams.
	Proxy string `json:"proxy,omitempty"`
	// Direction is inbound (to the local application), outbound (from
	// it) or gateway.
	Direction string `json:"direction"`
	Method    string `json:"method"`
	Authority string `json:"authority"`
	Path      string `json:"path"`
	// Status is the response code; 0 when none was sent (client gone).
	Status    int     `json:"status"`
	LatencyMs float64 `json:"latencyMs"`
	// Source is the caller: its virtual node when the mesh knows it,
	// else its address.
	Source string `json:"source"`
	// Destination is the virtual service (or cluster) routed to.
	Destination     string `json:"destination,omitempty"`
	Route           string `json:"route,omitempty"`
	ResponseFlags   string `json:"responseFlags,omitempty"`
	UpstreamCluster string `json:"upstreamCluster,omitempty"`
	UpstreamHost    string `json:"upstreamHost,omitempty"`
	// Headers are the request's headers: names, with their values
	// Redacted unless the tap asked for them (Denied ones always are).
	Headers map[string]string `json:"headers,omitempty"`
	// Error is set, with Proxy, only on a line of the control plane's
	// merged stream that reports a proxy it could not tap.
	Error string `json:"error,omitempty"`
}

// Filter says which requests a tap wants and what it sees of them.
type Filter struct {
	// PathPrefix, Method and Authority, when set, must match.
	PathPrefix string
	Method     string
	Authority  string
	// ShowHeaders shows header values, except those Denied.
	ShowHeaders bool
}

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

// Match reports whether a request is one the filter wants.
func (f *Filter) Match(method, authority, path string) bool {
	return strings.HasPrefix(path, f.PathPrefix) &&
		(f.Method == "" || strings.EqualFold(f.Method, method)) &&
		(f.Authority == "" || strings.EqualFold(f.Authority, authority))
}
