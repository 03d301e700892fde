package chain

import (
	"fmt"

	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlens/meshlens/internal/proxy/filters/cors"
	"github.com/meshlens/meshlens/internal/proxy/filters/fault"
	"github.com/meshlens/meshlens/internal/proxy/filters/grpcweb"
	"github.com/meshlens/meshlens/internal/proxy/filters/ratelimit"
)

// kind is one filter the chain runs.
type kind uint8

const (
	kindGRPCWeb kind = iota + 1
	kindCORS
	kindFault
	kindRateLimit
)

// filterConfigType is the type URL of Envoy's per-route FilterConfig
// wrapper (is_optional, disabled).
const filterConfigType = "type.googleapis.com/envoy.config.route.v3.FilterConfig"

// Config is the compiled HTTP filter chain of one connection manager: the
// filters before the router, in the order of its http_filters, with their
// listener-level configuration. It is immutable once built; a nil *Config
// (no filter) is what a connection manager without filters has.
type Config struct {
	order     []kind
	fault     *fault.Config
	rateLimit *ratelimit.Config
}

// Add decodes one http_filters entry (not the router): name is the
// filter's name, typed its typed_config (nil: the filter's empty
// configuration, as Envoy takes a filter named without one), now the
// rate limit bucket's start (ratelimit.Now()). known is false for a
// filter the chain does not implement; the caller decides between an
// error and ignoring it (is_optional). A filter given twice is refused:
// Envoy would run it twice, which no configuration of meshlens needs.
func (c *Config) Add(name string, typed *anypb.Any, now int64) (known bool, err error) {
	typeURL := typed.GetTypeUrl()
	is := func(n, t string) bool {
		if typed != nil {
			return typeURL == t
		}
		return name == n
	}
	var k kind
	switch {
	case is(grpcweb.Name, grpcweb.TypeURL):
		k = kindGRPCWeb
		if typed != nil {
			err = grpcweb.Decode(typed)
		}
	case is(cors.Name, cors.FilterTypeURL):
		k = kindCORS
		if typed != nil {
			err = cors.DecodeFilter(typed)
		}
	case is(fault.Name, fault.TypeURL):
		k = kindFault
		if typed == nil {
			typed = &anypb.Any{TypeUrl: fault.TypeURL}
		}
		c.fault, err = fault.Decode(typed)
	case is(ratelimit.Name, ratelimit.TypeURL):
		k = kindRateLimit
		if typed == nil {
			typed = &anypb.Any{TypeUrl: ratelimit.TypeURL}
		}
		c.rateLimit, err = ratelimit.Decode(typed, now)
	default:
		return false, nil
	}
	if err != nil {
		return true, err
	}
	for _, o := range c.order {
		if o == k {
			return true, fmt.Errorf("%s appears twice", name)
		}
	}
	c.order = append(c.order, k)
	return true, nil
}

// Empty reports whether the chain runs no filter.
func (c *Config) Empty() bool { return c == nil || len(c.order) == 0 }

// RateLimit is the listener-level rate limit configuration, nil when
// there is none (its stats are provisioned by the caller).
func (c *Config) RateLimit() *ratelimit.Config {
	if c == nil {
		return nil
	}
	return c.rateLimit
}

// Names lists the chain's filters in order, by their well-known names.
func (c *Config) Names() []string {
	if c == nil {
		return nil
	}
	out := make([]string, 0, len(c.order))
	for _, k := range c.order {
		switch k {
		case kindGRPCWeb:
			out = append(out, grpcweb.Name)
		case kindCORS:
			out = append(out, cors.Name)
		case kindFault:
			out = append(out, fault.Name)
		case kindRateLimit:
			out = append(out, ratelimit.Name)
		}
	}
	return out
}

// Route is the filters' configuration for one route: its
// typed_per_filter_config combined with its virtual host's (and route
// configuration's), as Envoy resolves them: the most specific fault and
// rate limit replace the others whole; CORS policies merge field by
// field. nil means none.
type Route struct {
	Fault     *fault.Config
	RateLimit *ratelimit.Config
	CORS      *cors.Policy
}

// DecodePerFilter decodes one level's typed_per_filter_config. Entries
// are told by their type; an envoy.config.route.v3.FilterConfig wrapper
// is unwrapped, and an unknown configuration inside one marked
// is_optional is skipped, as Envoy does; any other unknown configuration
// is an error naming its key. nil map: nil Route.
func DecodePerFilter(m map[string]*anypb.Any, now int64) (*Route, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := &Route{}
	for key, a := range m {
		optional := false
		if a.GetTypeUrl() == filterConfigType {
			var fc routev3.FilterConfig
			if err := fc.Unmarshal(a.GetValue()); err != nil {
				return nil, fmt.Errorf("typed_per_filter_config[%q]: %w", key, err)
			}
			if fc.GetDisabled() {
				return nil, fmt.Errorf("typed_per_filter_config[%q]: disabled is not supported", key)
			}
			optional, a = fc.GetIsOptional(), fc.GetConfig()
		}
		var err error
		switch a.GetTypeUrl() {
		case fault.TypeURL:
			out.Fault, err = fault.Decode(a)
		case ratelimit.TypeURL:
			out.RateLimit, err = ratelimit.Decode(a, now)
		case cors.PolicyTypeURL:
			out.CORS, err = cors.DecodePolicy(a)
		default:
			if optional {
				continue
			}
			err = fmt.Errorf("type %q is not a per-route configuration meshlens knows; mark it is_optional in a FilterConfig to have it ignored", a.GetTypeUrl())
		}
		if err != nil {
			return nil, fmt.Errorf("typed_per_filter_config[%q]: %w", key, err)
		}
	}
	return out, nil
}

// Combine resolves one route's configuration from its levels, most
// specific first (route, virtual host, route configuration); nil levels
// are skipped. It returns nil when no level configures anything.
func Combine(levels ...*Route) *Route {
	var out Route
	var policies []*cors.Policy
	for _, l := range levels {
		if l == nil {
			continue
		}
		if out.Fault == nil {
			out.Fault = l.Fault
		}
		if out.RateLimit == nil {
			out.RateLimit = l.RateLimit
		}
		if l.CORS != nil {
			policies = append(policies, l.CORS)
		}
	}
	out.CORS = cors.Merge(policies...)
	if out == (Route{}) {
		return nil
	}
	return &out
}
