package table

import (
	"fmt"

	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
)

// httpFilters compiles a connection manager's http_filters: the router
// last, the filters before it into out.Filters (chain), in order. As in
// Envoy, a filter meshlens does not run is refused unless it is marked
// is_optional, in which case it is skipped and listed in
// out.IgnoredHTTPFilters.
func (c *compiler) httpFilters(filters []*hcmv3.HttpFilter, out *HTTPManager) error {
	cfg := &chain.Config{}
	for i, f := range filters {
		router := f.GetName() == nameRouter || f.GetTypedConfig().GetTypeUrl() == typeRouter
		switch {
		case router && i != len(filters)-1:
			return fmt.Errorf("http_filters[%d]: %s must be the last filter", i, nameRouter)
		case !router && i == len(filters)-1:
			return fmt.Errorf("http_filters[%d]: the last filter is %q; want %s", i, f.GetName(), nameRouter)
		case router:
			continue
		case f.GetConfigDiscovery() != nil:
			return fmt.Errorf("http_filters[%d] (%s): config_discovery "+errNotSupported, i, f.GetName())
		case f.GetDisabled():
			// Envoy skips a disabled filter unless a route enables it,
			// which meshlens does not support: it is not run.
			out.IgnoredHTTPFilters = append(out.IgnoredHTTPFilters, f.GetName())
			continue
		}
		known, err := cfg.Add(f.GetName(), f.GetTypedConfig(), c.now)
		switch {
		case err != nil:
			return fmt.Errorf("http_filters[%d] (%s): %w", i, f.GetName(), err)
		case !known && f.GetIsOptional():
			out.IgnoredHTTPFilters = append(out.IgnoredHTTPFilters, f.GetName())
		case !known:
			return fmt.Errorf("http_filters[%d]: %q (%s) "+errNotSupported+"; mark it is_optional to have it ignored", i, f.GetName(), f.GetTypedConfig().GetTypeUrl())
		}
	}
	if !cfg.Empty() {
		out.Filters = cfg
		if rl := cfg.RateLimit(); rl != nil {
			c.rateLimits = append(c.rateLimits, rl)
		}
	}
	return nil
}

// perFilter decodes one level's typed_per_filter_config and keeps its
// rate limit for provisioning.
func (c *compiler) perFilter(m map[string]*anypb.Any) (*chain.Route, error) {
	r, err := chain.DecodePerFilter(m, c.now)
	if err != nil {
		return nil, err
	}
	if r != nil && r.RateLimit != nil {
		c.rateLimits = append(c.rateLimits, r.RateLimit)
	}
	return r, nil
}
