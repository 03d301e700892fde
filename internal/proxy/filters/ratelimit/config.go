// Package ratelimit is the data-plane runtime of Envoy's local rate limit
// filters: the HTTP filter envoy.filters.http.local_ratelimit (config
// envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit) and the
// network filter envoy.filters.network.local_ratelimit (config
// envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit), both
// backed by a lock-free token Bucket.
//
// HTTP use: Decode each LocalRateLimit (listener typed_config and route
// typed_per_filter_config) into a *Config and Provision it with a stats
// scope at StatsPrefix; Override picks the route's config (with its own
// bucket) when there is one, as Envoy does. Per request, Config.Decide
// takes a token when the filter is enabled for the request and says
// whether to answer locally; LocalReplyHeaders, ResponseHeaders and
// RequestHeaders apply the configured headers.
//
// TCP use: DecodeNetwork into a *NetConfig, Provision it, and call
// AllowConnection once per accepted connection; false means close it at
// once.
//
// A bucket belongs to its compiled config: a new snapshot that re-decodes
// the config starts a full bucket, as a new Envoy filter config does,
// unless the caller continues the previous config's bucket (ContinueFrom:
// same stats prefix and bucket parameters), which the proxy does so that
// an xDS update elsewhere does not refill it.
//
// Supported HTTP fields: stat_prefix, status, token_bucket, filter_enabled,
// filter_enforced (default 0% each, as in Envoy), response_headers_to_add,
// request_headers_to_add_when_not_enforced, enable_x_ratelimit_headers,
// rate_limited_as_resource_exhausted, enable_retry_after_header. Accepted
// and ignored because they only matter with descriptors: stage,
// vh_rate_limits, always_consume_default_token_bucket,
// max_dynamic_descriptors. Refused by name: descriptors, rate_limits,
// local_rate_limit_per_downstream_connection, local_cluster_rate_limit.
package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	ratelimitcommonv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlens/meshlens/internal/proxy/filters/percent"
	"github.com/meshlens/meshlens/internal/stats"
)

// TypeURL is the HTTP filter's typed_config (and typed_per_filter_config)
// type URL.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"

// Name is the HTTP filter's well-known name.
const Name = "envoy.filters.http.local_ratelimit"

// minFillInterval is Envoy's lower bound on token_bucket.fill_interval.
const minFillInterval = 50 * time.Millisecond

// gRPC statuses of a rate-limited gRPC request's local reply.
const (
	grpcUnavailable       = 14
	grpcResourceExhausted = 8
)

// Header names the filter sets.
const (
	HeaderRateLimited      = "X-Envoy-Ratelimited"
	HeaderRetryAfter       = "Retry-After"
	HeaderXRateLimitLimit  = "X-Ratelimit-Limit"
	HeaderXRateLimitRemain = "X-Ratelimit-Remaining"
	HeaderXRateLimitReset  = "X-Ratelimit-Reset"
)

// Stats are the HTTP filter's counters, with Envoy's names. nil handles
// are no-ops.
type Stats struct {
	Enabled     *stats.Counter // enabled
	Enforced    *stats.Counter // enforced
	RateLimited *stats.Counter // rate_limited
	OK          *stats.Counter // ok
}

// Config is a compiled HTTP LocalRateLimit. Apart from its bucket (atomic)
// and its stats (set once by Provision before use) it is immutable.
type Config struct {
	statPrefix  string
	status      int
	grpcStatus  int
	bucket      *Bucket // nil: no token bucket, every request is allowed
	enabled     percent.Fraction
	enforced    percent.Fraction
	respHeaders []headerOp
	reqHeaders  []headerOp
	xRateLimit  bool
	retryAfter  bool
	stats       Stats
}

// Decode compiles an HTTP LocalRateLimit carried in an Any. now is Now()
// (the bucket's start).
func Decode(a *anypb.Any, now int64) (*Config, error) {
	if a == nil {
		return nil, errors.New("local_ratelimit: typed_config: missing")
	}
	if a.GetTypeUrl() != TypeURL {
		return nil, fmt.Errorf("local_ratelimit: typed_config: type %q, want %q", a.GetTypeUrl(), TypeURL)
	}
	var m lrlv3.LocalRateLimit
	if err := m.Unmarshal(a.GetValue()); err != nil {
		return nil, fmt.Errorf("local_ratelimit: typed_config: %w", err)
	}
	return Compile(&m, now)
}

// Compile compiles a typed HTTP LocalRateLimit. Errors name the field.
func Compile(m *lrlv3.LocalRateLimit, now int64) (*Config, error) {
	c, err := compile(m, now)
	if err != nil {
		return nil, fmt.Errorf("local_ratelimit: %w", err)
	}
	return c, nil
}

func compile(m *lrlv3.LocalRateLimit, now int64) (*Config, error) {
	if m == nil {
		return nil, errors.New("config missing")
	}
	if m.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: required")
	}
	switch {
	case len(m.GetDescriptors()) > 0:
		return nil, errors.New("descriptors: not supported")
	case len(m.GetRateLimits()) > 0:
		return nil, errors.New("rate_limits: not supported")
	case m.GetLocalRateLimitPerDownstreamConnection():
		return nil, errors.New("local_rate_limit_per_downstream_connection: not supported")
	case m.GetLocalClusterRateLimit() != nil:
		return nil, errors.New("local_cluster_rate_limit: not supported")
	}
	c := &Config{statPrefix: m.GetStatPrefix(), status: http.StatusTooManyRequests, grpcStatus: grpcUnavailable}
	if s := m.GetStatus(); s != nil {
		code := int(s.GetCode())
		if code > 599 {
			return nil, fmt.Errorf("status.code: %d is not an HTTP status", code)
		}
		if code >= 400 {
			c.status = code // below 400 Envoy uses 429
		}
	}
	if m.GetRateLimitedAsResourceExhausted() {
		c.grpcStatus = grpcResourceExhausted
	}
	if tb := m.GetTokenBucket(); tb != nil {
		b, err := compileBucket(tb, "token_bucket", now)
		if err != nil {
			return nil, err
		}
		c.bucket = b
	}
	var err error
	if c.enabled, err = percent.FromRuntime(m.GetFilterEnabled(), percent.None, "filter_enabled"); err != nil {
		return nil, err
	}
	if c.enforced, err = percent.FromRuntime(m.GetFilterEnforced(), percent.None, "filter_enforced"); err != nil {
		return nil, err
	}
	if c.respHeaders, err = compileHeaders(m.GetResponseHeadersToAdd(), "response_headers_to_add"); err != nil {
		return nil, err
	}
	if c.reqHeaders, err = compileHeaders(m.GetRequestHeadersToAddWhenNotEnforced(), "request_headers_to_add_when_not_enforced"); err != nil {
		return nil, err
	}
	switch v := m.GetEnableXRatelimitHeaders(); v {
	case ratelimitcommonv3.XRateLimitHeadersRFCVersion_OFF:
	case ratelimitcommonv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03:
		c.xRateLimit = true
	default:
		return nil, fmt.Errorf("enable_x_ratelimit_headers: unknown value %d", int32(v))
	}
	c.retryAfter = m.GetEnableRetryAfterHeader()
	return c, nil
}

func compileBucket(tb *typev3.TokenBucket, field string, now int64) (*Bucket, error) {
	if tb.GetMaxTokens() == 0 {
		return nil, fmt.Errorf("%s.max_tokens: must be above 0", field)
	}
	per := uint32(1)
	if v := tb.GetTokensPerFill(); v != nil {
		if v.GetValue() == 0 {
			return nil, fmt.Errorf("%s.tokens_per_fill: must be above 0", field)
		}
		per = v.GetValue()
	}
	fi := tb.GetFillInterval()
	if fi == nil {
		return nil, fmt.Errorf("%s.fill_interval: required", field)
	}
	if err := fi.CheckValid(); err != nil {
		return nil, fmt.Errorf("%s.fill_interval: %w", field, err)
	}
	d := fi.AsDuration()
	if d < minFillInterval {
		return nil, fmt.Errorf("%s.fill_interval: %v is below the %v minimum", field, d, minFillInterval)
	}
	return NewBucket(tb.GetMaxTokens(), per, d, now), nil
}

// StatsPrefix is the scope prefix of the config's stats:
// <stat_prefix>.http_local_rate_limit.
func (c *Config) StatsPrefix() string { return c.statPrefix + ".http_local_rate_limit." }

// Provision creates the config's stats in sc (acquired at StatsPrefix; the
// caller releases it when the config is retired). Call it once, before the
// config is used; a nil sc leaves the stats no-ops.
func (c *Config) Provision(sc *stats.Scope) {
	if sc == nil {
		return
	}
	c.stats = Stats{
		Enabled:     sc.Counter("enabled"),
		Enforced:    sc.Counter("enforced"),
		RateLimited: sc.Counter("rate_limited"),
		OK:          sc.Counter("ok"),
	}
}

// Bucket is the config's token bucket, nil when it has none.
func (c *Config) Bucket() *Bucket { return c.bucket }

// Override returns the config for a request: the route's when it has one
// (its own bucket and settings replace the listener's), else the
// listener's. Either may be nil.
func Override(listener, route *Config) *Config {
	if route != nil {
		return route
	}
	return listener
}

// Decision is the filter's verdict on one request.
type Decision struct {
	// Enabled: the filter applied to the request (filter_enabled hit).
	Enabled bool
	// Limited: no token was left. The request is still forwarded unless
	// Enforced.
	Limited bool
	// Enforced: answer locally with Status (a gRPC request with
	// GRPCStatus) and LocalReplyHeaders, instead of forwarding.
	Enforced   bool
	Status     int
	GRPCStatus int
	// RetryAfter is the time until the bucket's next fill, when Limited.
	RetryAfter time.Duration
	// Remaining and Reset feed the x-ratelimit-* headers.
	Remaining uint32
	Reset     time.Duration
}

// Decide takes a token for one request, when the filter is enabled for it
// (rnd is one uniformly random draw; filter_enabled and filter_enforced
// use independent fractions of it), and counts Envoy's stats: enabled,
// then ok or rate_limited, and enforced. It neither locks nor allocates.
// A nil Config decides nothing.
func (c *Config) Decide(now int64, rnd uint64) Decision {
	var d Decision
	if c == nil || !c.enabled.Hit(rnd) {
		return d
	}
	d.Enabled = true
	c.stats.Enabled.Inc()
	ok := true
	if c.bucket != nil {
		ok, d.RetryAfter = c.bucket.Allow(now)
		if c.xRateLimit {
			d.Remaining = c.bucket.Remaining(now)
			d.Reset = c.bucket.UntilFill(now)
		}
	}
	if ok {
		c.stats.OK.Inc()
		return d
	}
	d.Limited = true
	c.stats.RateLimited.Inc()
	if !c.enforced.Hit(percent.Mix(rnd)) {
		return d
	}
	d.Enforced = true
	d.Status, d.GRPCStatus = c.status, c.grpcStatus
	c.stats.Enforced.Inc()
	return d
}

// LocalReplyHeaders sets the headers of the local reply for an enforced
// decision: x-envoy-ratelimited: true, response_headers_to_add, the
// x-ratelimit-* headers when enabled, and retry-after (seconds until the
// next token, at least 1) when enable_retry_after_header is set, the
// status is 429 and response_headers_to_add did not set one.
func (c *Config) LocalReplyHeaders(d Decision, h http.Header) {
	h.Set(HeaderRateLimited, "true")
	applyHeaders(c.respHeaders, h)
	c.ResponseHeaders(d, h)
	if c.retryAfter && d.Status == http.StatusTooManyRequests && h.Get(HeaderRetryAfter) == "" {
		h.Set(HeaderRetryAfter, strconv.FormatInt(RetryAfterSeconds(d.RetryAfter), 10))
	}
}

// ResponseHeaders adds the x-ratelimit-limit, -remaining and -reset
// headers (enable_x_ratelimit_headers: DRAFT_VERSION_03) to a response of
// a request the filter was enabled for. It does nothing otherwise.
func (c *Config) ResponseHeaders(d Decision, h http.Header) {
	if c == nil || !c.xRateLimit || !d.Enabled || c.bucket == nil {
		return
	}
	h.Set(HeaderXRateLimitLimit, strconv.FormatUint(uint64(c.bucket.MaxTokens()), 10))
	h.Set(HeaderXRateLimitRemain, strconv.FormatUint(uint64(d.Remaining), 10))
	h.Set(HeaderXRateLimitReset, strconv.FormatInt(RetryAfterSeconds(d.Reset), 10))
}

// RequestHeaders adds request_headers_to_add_when_not_enforced to the
// upstream request of a decision that was limited but not enforced.
func (c *Config) RequestHeaders(d Decision, h http.Header) {
	if c == nil || !d.Limited || d.Enforced {
		return
	}
	applyHeaders(c.reqHeaders, h)
}

// RetryAfterSeconds rounds a wait up to whole seconds, at least 1, as the
// Retry-After header carries it.
func RetryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
