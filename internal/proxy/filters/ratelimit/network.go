package ratelimit

import (
	"errors"
	"fmt"

	nlrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/local_ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlens/meshlens/internal/stats"
)

// NetworkTypeURL is the network filter's typed_config type URL.
const NetworkTypeURL = "type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit"

// NetworkName is the network filter's well-known name.
const NetworkName = "envoy.filters.network.local_ratelimit"

// NetConfig is a compiled network LocalRateLimit: one token per accepted
// connection. Apart from its bucket (atomic) and its stats (set once by
// Provision) it is immutable.
type NetConfig struct {
	statPrefix  string
	bucket      *Bucket
	enabled     bool
	rateLimited *stats.Counter
}

// DecodeNetwork compiles a network LocalRateLimit carried in an Any. now
// is Now().
func DecodeNetwork(a *anypb.Any, now int64) (*NetConfig, error) {
	if a == nil {
		return nil, errors.New("network local_ratelimit: typed_config: missing")
	}
	if a.GetTypeUrl() != NetworkTypeURL {
		return nil, fmt.Errorf("network local_ratelimit: typed_config: type %q, want %q", a.GetTypeUrl(), NetworkTypeURL)
	}
	var m nlrlv3.LocalRateLimit
	if err := m.Unmarshal(a.GetValue()); err != nil {
		return nil, fmt.Errorf("network local_ratelimit: typed_config: %w", err)
	}
	return CompileNetwork(&m, now)
}

// CompileNetwork compiles a typed network LocalRateLimit.
func CompileNetwork(m *nlrlv3.LocalRateLimit, now int64) (*NetConfig, error) {
	if m == nil {
		return nil, errors.New("network local_ratelimit: config missing")
	}
	if m.GetStatPrefix() == "" {
		return nil, errors.New("network local_ratelimit: stat_prefix: required")
	}
	if m.GetShareKey() != "" {
		return nil, errors.New("network local_ratelimit: share_key: not supported")
	}
	tb := m.GetTokenBucket()
	if tb == nil {
		return nil, errors.New("network local_ratelimit: token_bucket: required")
	}
	b, err := compileBucket(tb, "token_bucket", now)
	if err != nil {
		return nil, fmt.Errorf("network local_ratelimit: %w", err)
	}
	c := &NetConfig{statPrefix: m.GetStatPrefix(), bucket: b, enabled: true}
	if f := m.GetRuntimeEnabled(); f != nil {
		if f.GetDefaultValue() == nil {
			return nil, errors.New("network local_ratelimit: runtime_enabled.default_value: required")
		}
		c.enabled = f.GetDefaultValue().GetValue()
	}
	return c, nil
}

// StatsPrefix is the scope prefix of the filter's stats, as Envoy roots
// them: local_ratelimit.<stat_prefix>.
func (c *NetConfig) StatsPrefix() string { return "local_ratelimit." + c.statPrefix + "." }

// Provision creates the stats (rate_limited) in sc, acquired at
// StatsPrefix. Call it once before use; nil leaves them no-ops.
func (c *NetConfig) Provision(sc *stats.Scope) {
	if sc != nil {
		c.rateLimited = sc.Counter("rate_limited")
	}
}

// Bucket is the config's token bucket.
func (c *NetConfig) Bucket() *Bucket { return c.bucket }

// AllowConnection takes a token for a new connection. false (counted as
// rate_limited) means close the connection at once, before any other
// filter sees it. A disabled filter (runtime_enabled false) allows all.
func (c *NetConfig) AllowConnection(now int64) bool {
	if c == nil || !c.enabled {
		return true
	}
	if ok, _ := c.bucket.Allow(now); ok {
		return true
	}
	c.rateLimited.Inc()
	return false
}
