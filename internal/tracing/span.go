package tracing

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

// Kind is the span kind.
type Kind uint8

// The kinds the proxy makes.
const (
	KindServer Kind = iota + 1
	KindClient
)

// String is the kind as OpenTelemetry names it.
func (k Kind) String() string {
	switch k {
	case KindServer:
		return "server"
	case KindClient:
		return "client"
	}
	return "internal"
}

// Status is the span status.
type Status uint8

// The statuses, as OpenTelemetry has them.
const (
	StatusUnset Status = iota
	StatusOK
	StatusError
)

// AttrType is the type of an Attr's value.
type AttrType uint8

// The attribute types.
const (
	TypeString AttrType = iota + 1
	TypeInt
	TypeBool
	TypeFloat
)

// Attr is one attribute: a key and a typed value, held without boxing.
type Attr struct {
	Key   string
	Type  AttrType
	Str   string
	Int   int64
	Float float64
	Bool  bool
}

// String makes a string attribute.
func String(k, v string) Attr { return Attr{Key: k, Type: TypeString, Str: v} }

// Int makes an integer attribute.
func Int(k string, v int64) Attr { return Attr{Key: k, Type: TypeInt, Int: v} }

// Bool makes a boolean attribute.
func Bool(k string, v bool) Attr { return Attr{Key: k, Type: TypeBool, Bool: v} }

// Float makes a floating-point attribute.
func Float(k string, v float64) Attr { return Attr{Key: k, Type: TypeFloat, Float: v} }

// MaxEventAttrs is how many attributes one event holds; more are dropped.
const MaxEventAttrs = 4

// Event is a timed annotation on a span (a retry, a timeout...). Its
// attributes live in a fixed array so that adding one allocates nothing.
type Event struct {
	Name   string
	Time   time.Time
	attrs  [MaxEventAttrs]Attr
	nattrs uint8
}

// Attrs are the event's attributes.
func (e *Event) Attrs() []Attr { return e.attrs[:e.nattrs] }

// HTTP holds the HTTP attributes of a span.
type HTTP struct {
	Method, Path, Route string
	// StatusCode is 0 until a response is known.
	StatusCode    int
	ServerAddress string
	// ServerPort is 0 when unknown.
	ServerPort int
	// Peer is the other side of the connection (the client for a server
	// span, the upstream host for a client span).
	Peer      netip.AddrPort
	UserAgent string
}

// RPC holds the gRPC attributes; Service empty means not gRPC.
type RPC struct {
	Service, Method string
	// GRPCStatus is meaningful when HasGRPCStatus is set.
	GRPCStatus    int
	HasGRPCStatus bool
}

// Mesh holds the mesh's own per-request attributes (the mesh and the
// node or gateway are the Tracer's, on every span).
type Mesh struct {
	VirtualService, Route, UpstreamCluster, ResponseFlags string
	// RetryCount is how many retries the request took (server span).
	RetryCount int
	// Attempt is the attempt's number, from 1 (client span); 0 unset.
	Attempt int
}

// Resource describes the proxy that records the spans.
type Resource struct {
	// ServiceName is service.name: the virtual node's or gateway's name.
	ServiceName string
	// Mesh, VirtualNode and VirtualGateway name the proxy in the mesh
	// (one of the last two is set).
	Mesh, VirtualNode, VirtualGateway string
}

// SpanData is a finished span as exporters receive it: a value that
// owns its slices.
type SpanData struct {
	// Name is the span name; when empty, DisplayName derives one.
	Name string
	Kind Kind
	// TraceID and SpanID identify the span; ParentID is zero for a root.
	TraceID    [16]byte
	SpanID     [8]byte
	ParentID   [8]byte
	TraceState string
	// Debug is B3's debug flag, carried to collectors that know it.
	Debug bool
	// TailKept is set for a span that head sampling dropped and the tail
	// rule kept: it goes to the built-in store only.
	TailKept bool

	Start, End time.Time
	Status     Status
	// StatusMessage says why, for StatusError.
	StatusMessage string

	HTTP HTTP
	RPC  RPC
	Mesh Mesh

	// Extra are attributes beyond the typed ones, at most the Tracer's
	// MaxExtraAttrs; DroppedAttrs counts those refused.
	Extra        []Attr
	DroppedAttrs int
	// Events, at most the Tracer's MaxEvents; DroppedEvents counts those
	// refused.
	Events        []Event
	DroppedEvents int

	// Resource is the Tracer's, shared and read-only.
	Resource *Resource
}

// Context is the span's propagation context.
func (d *SpanData) Context() propagation.SpanContext {
	return propagation.SpanContext{TraceID: d.TraceID, SpanID: d.SpanID, Sampled: !d.TailKept,
		SampledKnown: true, Debug: d.Debug, TraceState: d.TraceState}
}

// DisplayName is Name, or one derived as OpenTelemetry's conventions
// derive it: "{service}/{method}" for gRPC, "{method} {route}" for HTTP,
// "{method}" without a route. It allocates, so exporters call it off the
// request path.
func (d *SpanData) DisplayName() string {
	switch {
	case d.Name != "":
		return d.Name
	case d.RPC.Service != "":
		return d.RPC.Service + "/" + d.RPC.Method
	case d.HTTP.Route != "":
		return d.HTTP.Method + " " + d.HTTP.Route
	case d.HTTP.Method != "":
		return d.HTTP.Method
	}
	return "request"
}

// Attributes appends every attribute of the span to dst, the typed ones
// under their semantic-convention keys, then the extras. Unset typed
// fields are left out.
func (d *SpanData) Attributes(dst []Attr) []Attr {
	s := func(k, v string) {
		if v != "" {
			dst = append(dst, String(k, v))
		}
	}
	i := func(k string, v int) {
		if v != 0 {
			dst = append(dst, Int(k, int64(v)))
		}
	}
	s(KeyHTTPRequestMethod, d.HTTP.Method)
	s(KeyURLPath, d.HTTP.Path)
	s(KeyHTTPRoute, d.HTTP.Route)
	i(KeyHTTPResponseStatusCode, d.HTTP.StatusCode)
	s(KeyServerAddress, d.HTTP.ServerAddress)
	i(KeyServerPort, d.HTTP.ServerPort)
	if d.HTTP.Peer.IsValid() {
		dst = append(dst, String(KeyNetworkPeerAddress, d.HTTP.Peer.Addr().String()))
		i(KeyNetworkPeerPort, int(d.HTTP.Peer.Port()))
	}
	s(KeyUserAgentOriginal, d.HTTP.UserAgent)
	if d.RPC.Service != "" {
		dst = append(dst, String(KeyRPCSystem, "grpc"))
		s(KeyRPCService, d.RPC.Service)
		s(KeyRPCMethod, d.RPC.Method)
	}
	if d.RPC.HasGRPCStatus {
		dst = append(dst, Int(KeyRPCGRPCStatusCode, int64(d.RPC.GRPCStatus)))
	}
	if r := d.Resource; r != nil {
		s(KeyMesh, r.Mesh)
		s(KeyVirtualNode, r.VirtualNode)
		s(KeyVirtualGateway, r.VirtualGateway)
	}
	s(KeyVirtualService, d.Mesh.VirtualService)
	s(KeyRoute, d.Mesh.Route)
	s(KeyUpstreamCluster, d.Mesh.UpstreamCluster)
	s(KeyResponseFlags, d.Mesh.ResponseFlags)
	if d.Kind == KindServer {
		dst = append(dst, Int(KeyRetryCount, int64(d.Mesh.RetryCount)))
	}
	i(KeyAttempt, d.Mesh.Attempt)
	if d.TailKept {
		dst = append(dst, Bool(KeyTailKept, true))
	}
	return append(dst, d.Extra...)
}

// Value formats an attribute's value as text (Zipkin tags, X-Ray
// annotations are strings or numbers).
func (a Attr) Value() string {
	switch a.Type {
	case TypeInt:
		return strconv.FormatInt(a.Int, 10)
	case TypeBool:
		return strconv.FormatBool(a.Bool)
	case TypeFloat:
		return strconv.FormatFloat(a.Float, 'g', -1, 64)
	}
	return a.Str
}

// Span is a span being recorded. A nil *Span is a span that is not
// recorded: every method is a no-op on it, so the request path calls
// them without checking. A Span must not be used after End: it goes back
// to a pool. Its methods are not safe for concurrent use; one request's
// goroutine owns it.
type Span struct {
	d      SpanData
	tracer *Tracer
}

// Context is the span's propagation context; the zero SpanContext for a
// nil span.
func (s *Span) Context() propagation.SpanContext {
	if s == nil {
		return propagation.SpanContext{}
	}
	return s.d.Context()
}

// Recording reports whether s records anything (is not nil).
func (s *Span) Recording() bool { return s != nil }

// SetName overrides the derived span name.
func (s *Span) SetName(name string) {
	if s != nil {
		s.d.Name = name
	}
}

// SetHTTPRequest records the request line's method and path (without
// the query, as url.path is) and the User-Agent.
func (s *Span) SetHTTPRequest(method, path, userAgent string) {
	if s != nil {
		if i := indexQuery(path); i >= 0 {
			path = path[:i]
		}
		s.d.HTTP.Method, s.d.HTTP.Path, s.d.HTTP.UserAgent = method, path, userAgent
	}
}

func indexQuery(p string) int {
	for i := 0; i < len(p); i++ {
		if p[i] == '?' {
			return i
		}
	}
	return -1
}

// SetHTTPRoute records the route template (http.route), e.g. the matched
// prefix.
func (s *Span) SetHTTPRoute(route string) {
	if s != nil {
		s.d.HTTP.Route = route
	}
}

// SetServerAddress records server.address and server.port (port 0: unknown).
func (s *Span) SetServerAddress(host string, port int) {
	if s != nil {
		s.d.HTTP.ServerAddress, s.d.HTTP.ServerPort = host, port
	}
}

// SetPeer records network.peer.address and network.peer.port.
func (s *Span) SetPeer(peer netip.AddrPort) {
	if s != nil {
		s.d.HTTP.Peer = peer
	}
}

// SetStatusCode records the HTTP status; End derives the span status
// from it unless SetError was called.
func (s *Span) SetStatusCode(code int) {
	if s != nil {
		s.d.HTTP.StatusCode = code
	}
}

// SetGRPC marks the span as a gRPC call of service/method.
func (s *Span) SetGRPC(service, method string) {
	if s != nil {
		s.d.RPC.Service, s.d.RPC.Method = service, method
	}
}

// SetGRPCStatus records the gRPC status code.
func (s *Span) SetGRPCStatus(code int) {
	if s != nil {
		s.d.RPC.GRPCStatus, s.d.RPC.HasGRPCStatus = code, true
	}
}

// SetVirtualService records meshlens.virtual_service.
func (s *Span) SetVirtualService(name string) {
	if s != nil {
		s.d.Mesh.VirtualService = name
	}
}

// SetRoute records meshlens.route, the mesh route's name.
func (s *Span) SetRoute(name string) {
	if s != nil {
		s.d.Mesh.Route = name
	}
}

// SetUpstreamCluster records meshlens.upstream_cluster.
func (s *Span) SetUpstreamCluster(name string) {
	if s != nil {
		s.d.Mesh.UpstreamCluster = name
	}
}

// SetResponseFlags records meshlens.response_flags, Envoy's short form
// ("UH,UT").
func (s *Span) SetResponseFlags(flags string) {
	if s != nil {
		s.d.Mesh.ResponseFlags = flags
	}
}

// SetRetryCount records meshlens.retry_count.
func (s *Span) SetRetryCount(n int) {
	if s != nil {
		s.d.Mesh.RetryCount = n
	}
}

// SetError sets the status to error with a message.
func (s *Span) SetError(msg string) {
	if s != nil {
		s.d.Status, s.d.StatusMessage = StatusError, msg
	}
}

// SetAttr adds an attribute beyond the typed ones; past the Tracer's
// MaxExtraAttrs it is counted as dropped.
func (s *Span) SetAttr(a Attr) {
	if s == nil {
		return
	}
	if len(s.d.Extra) >= s.tracer.maxExtra {
		s.d.DroppedAttrs++
		return
	}
	s.d.Extra = append(s.d.Extra, a)
}

// AddEvent records an event (EventRetry, EventTimeout, ...) with up to
// MaxEventAttrs attributes; past the Tracer's MaxEvents it is counted as
// dropped.
func (s *Span) AddEvent(name string, t time.Time, attrs ...Attr) {
	if s == nil {
		return
	}
	if len(s.d.Events) >= s.tracer.maxEvents {
		s.d.DroppedEvents++
		return
	}
	e := Event{Name: name, Time: t}
	e.nattrs = uint8(copy(e.attrs[:], attrs))
	s.d.Events = append(s.d.Events, e)
}

// StartClient starts the client span of one upstream attempt (from 1; a
// retry is a new client span with the next number), a child of s with
// the same request attributes and mesh route. It returns nil for a nil s.
func (s *Span) StartClient(attempt int, start time.Time) *Span {
	if s == nil {
		return nil
	}
	c := s.tracer.get()
	c.d.Kind = KindClient
	c.d.TraceID = s.d.TraceID
	c.d.SpanID = newSpanID()
	c.d.ParentID = s.d.SpanID
	c.d.TraceState = s.d.TraceState
	c.d.Debug = s.d.Debug
	c.d.TailKept = s.d.TailKept
	c.d.Start = start
	c.d.HTTP.Method, c.d.HTTP.Path, c.d.HTTP.Route = s.d.HTTP.Method, s.d.HTTP.Path, s.d.HTTP.Route
	c.d.HTTP.UserAgent = s.d.HTTP.UserAgent
	c.d.RPC.Service, c.d.RPC.Method = s.d.RPC.Service, s.d.RPC.Method
	c.d.Mesh.VirtualService, c.d.Mesh.Route = s.d.Mesh.VirtualService, s.d.Mesh.Route
	c.d.Mesh.UpstreamCluster = s.d.Mesh.UpstreamCluster
	c.d.Mesh.Attempt = attempt
	return c
}

// End finishes the span at t and hands it to the exporters; s must not
// be used afterwards.
func (s *Span) End(t time.Time) {
	if s == nil {
		return
	}
	s.d.End = t
	if s.d.Status == StatusUnset {
		s.d.Status = derivedStatus(&s.d)
	}
	s.tracer.export(&s.d)
	s.tracer.put(s)
}

// derivedStatus is the span status OpenTelemetry's conventions give: a
// server span fails on 5xx (and gRPC server errors), a client span on
// 4xx and 5xx (and any gRPC status but OK). A span with no response
// (status 0) after a request was made failed too.
func derivedStatus(d *SpanData) Status {
	if d.RPC.HasGRPCStatus {
		if d.Kind == KindServer && serverGRPCError(d.RPC.GRPCStatus) ||
			d.Kind == KindClient && d.RPC.GRPCStatus != 0 {
			return StatusError
		}
	}
	c := d.HTTP.StatusCode
	switch {
	case c == 0 && d.HTTP.Method != "":
		return StatusError
	case c >= 500:
		return StatusError
	case c >= 400 && d.Kind == KindClient:
		return StatusError
	}
	return StatusUnset
}

func serverGRPCError(code int) bool {
	switch code {
	case 2, 4, 12, 13, 14, 15:
		return true
	}
	return false
}
