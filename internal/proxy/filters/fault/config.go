// Package fault is the data-plane runtime of Envoy's fault injection
// filter (envoy.filters.http.fault, config
// envoy.extensions.filters.http.fault.v3.HTTPFault): it delays and aborts
// a fraction of requests, with an HTTP status or a gRPC status, either as
// configured or as the request's x-envoy-fault-* headers ask when the
// configuration allows header control.
//
// Use: Decode the listener's HTTPFault (and each route's
// typed_per_filter_config) into a *Config; Override picks the route's
// when there is one, as Envoy does (the route's replaces the listener's
// as a whole). Per request, Config.Decide returns a Decision from the
// request headers and one random draw; Filter.Inject carries it out
// (waits out the delay, counts stats, enforces max_active_faults) and
// says which local reply to send, if any.
//
// Supported: delay (fixed_delay or header_delay) with percentage, abort
// (http_status, grpc_status or header_abort) with percentage and
// response_body, max_active_faults, headers (exact, prefix, suffix,
// contains, present, string_match and safe_regex matchers, with
// invert_match), downstream_nodes. Runtime keys (*_runtime) are accepted
// and ignored: meshlens has no runtime layer, so the configured values
// apply, as in an Envoy whose runtime does not set those keys. Refused with
// an error naming the field: upstream_cluster, response_rate_limit,
// range_match header matchers and pseudo-header (":name") matchers. Not
// emitted: the per-downstream-cluster stats
// (http.<prefix>.fault.<downstream_cluster>.*), which would need a stat
// looked up per request.
//
// One deliberate difference from Envoy: Envoy checks max_active_faults
// before deciding, so at the bound faults_overflow counts every request;
// here it counts only requests that would have been faulted, and the
// bound is taken with a compare-and-swap, so it is never overshot.
package fault

import (
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"time"

	routev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/route/v3"
	faultcommonv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshlens/meshlens/internal/proxy/filters/percent"
	"github.com/meshlens/meshlens/internal/proxy/filters/strmatch"
)

// TypeURL is the type URL of the filter's typed_config and of its
// typed_per_filter_config.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

// Name is the filter's well-known name.
const Name = "envoy.filters.http.fault"

// Header names (in canonical MIME form, as http.Header keys them) that
// control faults when the configuration has header_delay or header_abort,
// and those that select requests.
const (
	HeaderAbortRequest           = "X-Envoy-Fault-Abort-Request"
	HeaderAbortGRPCRequest       = "X-Envoy-Fault-Abort-Grpc-Request"
	HeaderAbortRequestPercentage = "X-Envoy-Fault-Abort-Request-Percentage"
	HeaderDelayRequest           = "X-Envoy-Fault-Delay-Request"
	HeaderDelayRequestPercentage = "X-Envoy-Fault-Delay-Request-Percentage"
	HeaderDownstreamServiceNode  = "X-Envoy-Downstream-Service-Node"
)

// maxDelay bounds a configured fixed_delay: a day is far beyond any test's
// need, and a finite bound keeps time arithmetic from overflowing.
const maxDelay = 24 * time.Hour

type abortKind uint8

const (
	abortNone abortKind = iota
	abortHTTP
	abortGRPC
	abortHeader
)

// Config is a compiled HTTPFault. It is immutable and safe for concurrent
// use.
type Config struct {
	hasDelay    bool
	headerDelay bool
	fixedDelay  time.Duration
	delayPct    percent.Fraction

	abort     abortKind
	abortHTTP int
	abortGRPC int
	abortPct  percent.Fraction
	abortBody string

	maxActive    uint32
	hasMaxActive bool

	headers []headerMatcher
	nodes   []string
}

// Decode compiles an HTTPFault carried in an Any (typed_config or
// typed_per_filter_config).
func Decode(a *anypb.Any) (*Config, error) {
	if a == nil {
		return nil, errors.New("fault: typed_config: missing")
	}
	if a.GetTypeUrl() != TypeURL {
		return nil, fmt.Errorf("fault: typed_config: type %q, want %q", a.GetTypeUrl(), TypeURL)
	}
	var m faultv3.HTTPFault
	if err := m.Unmarshal(a.GetValue()); err != nil {
		return nil, fmt.Errorf("fault: typed_config: %w", err)
	}
	return Compile(&m)
}

// Compile compiles a typed HTTPFault. Errors name the field path.
func Compile(m *faultv3.HTTPFault) (*Config, error) {
	if m == nil {
		return nil, errors.New("fault: config missing")
	}
	c := &Config{}
	if err := c.compileDelay(m.GetDelay()); err != nil {
		return nil, fmt.Errorf("fault: %w", err)
	}
	if err := c.compileAbort(m.GetAbort()); err != nil {
		return nil, fmt.Errorf("fault: %w", err)
	}
	if m.GetUpstreamCluster() != "" {
		return nil, errors.New("fault: upstream_cluster: not supported (select the route instead)")
	}
	if m.GetResponseRateLimit() != nil {
		return nil, errors.New("fault: response_rate_limit: not supported")
	}
	if v := m.GetMaxActiveFaults(); v != nil {
		c.maxActive, c.hasMaxActive = v.GetValue(), true
	}
	for i, h := range m.GetHeaders() {
		hm, err := compileHeader(h, fmt.Sprintf("headers[%d]", i))
		if err != nil {
			return nil, fmt.Errorf("fault: %w", err)
		}
		c.headers = append(c.headers, hm)
	}
	for i, n := range m.GetDownstreamNodes() {
		if n == "" {
			return nil, fmt.Errorf("fault: downstream_nodes[%d]: empty", i)
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

func (c *Config) compileDelay(d *faultcommonv3.FaultDelay) error {
	if d == nil {
		return nil
	}
	var err error
	if c.delayPct, err = percent.FromProto(d.GetPercentage(), percent.None, "delay.percentage"); err != nil {
		return err
	}
	switch s := d.GetFaultDelaySecifier().(type) {
	case *faultcommonv3.FaultDelay_FixedDelay:
		if err := s.FixedDelay.CheckValid(); err != nil {
			return fmt.Errorf("delay.fixed_delay: %w", err)
		}
		v := s.FixedDelay.AsDuration()
		if v <= 0 {
			return fmt.Errorf("delay.fixed_delay: %v is not positive", v)
		}
		if v > maxDelay {
			return fmt.Errorf("delay.fixed_delay: %v is over the %v bound", v, maxDelay)
		}
		c.fixedDelay = v
	case *faultcommonv3.FaultDelay_HeaderDelay_:
		c.headerDelay = true
	default:
		return errors.New("delay: one of fixed_delay or header_delay is required")
	}
	c.hasDelay = true
	return nil
}

func (c *Config) compileAbort(a *faultv3.FaultAbort) error {
	if a == nil {
		return nil
	}
	var err error
	if c.abortPct, err = percent.FromProto(a.GetPercentage(), percent.None, "abort.percentage"); err != nil {
		return err
	}
	switch s := a.GetErrorType().(type) {
	case *faultv3.FaultAbort_HttpStatus:
		if s.HttpStatus < 200 || s.HttpStatus >= 600 {
			return fmt.Errorf("abort.http_status: %d is outside [200, 600)", s.HttpStatus)
		}
		c.abort, c.abortHTTP = abortHTTP, int(s.HttpStatus)
	case *faultv3.FaultAbort_GrpcStatus:
		if s.GrpcStatus > 1<<31-1 {
			return fmt.Errorf("abort.grpc_status: %d is out of range", s.GrpcStatus)
		}
		c.abort, c.abortGRPC = abortGRPC, int(s.GrpcStatus)
	case *faultv3.FaultAbort_HeaderAbort_:
		c.abort = abortHeader
	default:
		return errors.New("abort: one of http_status, grpc_status or header_abort is required")
	}
	c.abortBody = a.GetResponseBody()
	return nil
}

// Override returns the configuration that applies to a request: the
// route's typed_per_filter_config when it has one, which replaces the
// listener's as a whole (Envoy does not merge fault configs), else the
// listener's. Either may be nil; nil means no fault.
func Override(listener, route *Config) *Config {
	if route != nil {
		return route
	}
	return listener
}

// MaxActiveFaults is the configured max_active_faults, and whether one is
// set.
func (c *Config) MaxActiveFaults() (uint32, bool) { return c.maxActive, c.hasMaxActive }

type headerMatcher struct {
	name    string // canonical MIME form
	present bool   // a present_match: only presence matters
	m       strmatch.Matcher
	invert  bool
	missing bool // treat_missing_header_as_empty
}

func compileHeader(h *routev3.HeaderMatcher, field string) (headerMatcher, error) {
	name := h.GetName()
	if name == "" {
		return headerMatcher{}, fmt.Errorf("%s.name: empty", field)
	}
	if strings.HasPrefix(name, ":") {
		return headerMatcher{}, fmt.Errorf("%s.name: pseudo-header %q is not supported by the fault filter", field, name)
	}
	if !validHeaderName(name) {
		return headerMatcher{}, fmt.Errorf("%s.name: %q is not a valid header name", field, name)
	}
	hm := headerMatcher{
		name:    textproto.CanonicalMIMEHeaderKey(name),
		invert:  h.GetInvertMatch(),
		missing: h.GetTreatMissingHeaderAsEmpty(),
	}
	var sm *matcherv3StringMatcher
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case nil:
		// No specifier: Envoy matches on presence.
		hm.present = true
	case *routev3.HeaderMatcher_PresentMatch:
		hm.present = true
		if !s.PresentMatch {
			hm.invert = !hm.invert
		}
	case *routev3.HeaderMatcher_ExactMatch:
		//lint:ignore SA1019 Envoy still honours the deprecated specifiers, so a control plane may send them.
		sm = exactMatcher(s.ExactMatch)
	case *routev3.HeaderMatcher_PrefixMatch:
		//lint:ignore SA1019 Envoy still honours the deprecated specifiers, so a control plane may send them.
		sm = prefixMatcher(s.PrefixMatch)
	case *routev3.HeaderMatcher_SuffixMatch:
		//lint:ignore SA1019 Envoy still honours the deprecated specifiers, so a control plane may send them.
		sm = suffixMatcher(s.SuffixMatch)
	case *routev3.HeaderMatcher_ContainsMatch:
		//lint:ignore SA1019 Envoy still honours the deprecated specifiers, so a control plane may send them.
		sm = containsMatcher(s.ContainsMatch)
	case *routev3.HeaderMatcher_SafeRegexMatch:
		//lint:ignore SA1019 Envoy still honours the deprecated specifiers, so a control plane may send them.
		sm = regexMatcher(s.SafeRegexMatch)
	case *routev3.HeaderMatcher_StringMatch:
		sm = s.StringMatch
	case *routev3.HeaderMatcher_RangeMatch:
		return headerMatcher{}, fmt.Errorf("%s.range_match: not supported by the fault filter", field)
	default:
		return headerMatcher{}, fmt.Errorf("%s: unknown header_match_specifier %T", field, s)
	}
	if sm != nil {
		m, err := strmatch.Compile(sm, field+".string_match")
		if err != nil {
			return headerMatcher{}, err
		}
		hm.m = m
	}
	return hm, nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}
