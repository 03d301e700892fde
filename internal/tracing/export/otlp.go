package export

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshlens/meshlens/internal/tracing"
)

// ScopeName is the instrumentation scope of meshlens's spans.
const ScopeName = "github.com/meshlens/meshlens/internal/tracing"

// OTLPRequest converts a batch to an OTLP export request: one
// ResourceSpans per resource (service.name, meshlens.mesh and the node
// or gateway), one scope.
func OTLPRequest(batch []tracing.SpanData) *coltracepb.ExportTraceServiceRequest {
	req := &coltracepb.ExportTraceServiceRequest{}
	byRes := map[*tracing.Resource]*tracepb.ScopeSpans{}
	for i := range batch {
		d := &batch[i]
		ss := byRes[d.Resource]
		if ss == nil {
			ss = &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: ScopeName}}
			byRes[d.Resource] = ss
			req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{
				Resource:   otlpResource(d.Resource),
				ScopeSpans: []*tracepb.ScopeSpans{ss},
			})
		}
		ss.Spans = append(ss.Spans, otlpSpan(d))
	}
	return req
}

func otlpResource(r *tracing.Resource) *resourcepb.Resource {
	res := &resourcepb.Resource{}
	if r == nil {
		return res
	}
	for _, kv := range [][2]string{
		{tracing.KeyServiceName, r.ServiceName},
		{tracing.KeyMesh, r.Mesh},
		{tracing.KeyVirtualNode, r.VirtualNode},
		{tracing.KeyVirtualGateway, r.VirtualGateway},
	} {
		if kv[1] != "" {
			res.Attributes = append(res.Attributes, otlpAttr(tracing.String(kv[0], kv[1])))
		}
	}
	return res
}

func otlpAttr(a tracing.Attr) *commonpb.KeyValue {
	v := &commonpb.AnyValue{}
	switch a.Type {
	case tracing.TypeInt:
		v.Value = &commonpb.AnyValue_IntValue{IntValue: a.Int}
	case tracing.TypeBool:
		v.Value = &commonpb.AnyValue_BoolValue{BoolValue: a.Bool}
	case tracing.TypeFloat:
		v.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: a.Float}
	default:
		v.Value = &commonpb.AnyValue_StringValue{StringValue: a.Str}
	}
	return &commonpb.KeyValue{Key: a.Key, Value: v}
}

func otlpSpan(d *tracing.SpanData) *tracepb.Span {
	s := &tracepb.Span{
		TraceId:                append([]byte(nil), d.TraceID[:]...),
		SpanId:                 append([]byte(nil), d.SpanID[:]...),
		TraceState:             d.TraceState,
		Name:                   d.DisplayName(),
		StartTimeUnixNano:      uint64(d.Start.UnixNano()),
		EndTimeUnixNano:        uint64(d.End.UnixNano()),
		DroppedAttributesCount: uint32(d.DroppedAttrs),
		DroppedEventsCount:     uint32(d.DroppedEvents),
		// W3C trace flags (sampled) and "the parent's is_remote is
		// known" (bit 8), as OpenTelemetry's SDKs set them.
		Flags: 0x101,
	}
	if d.ParentID != [8]byte{} {
		s.ParentSpanId = append([]byte(nil), d.ParentID[:]...)
		if d.Kind == tracing.KindServer {
			s.Flags |= 0x200 // a server span's parent is the caller's span: remote
		}
	}
	switch d.Kind {
	case tracing.KindServer:
		s.Kind = tracepb.Span_SPAN_KIND_SERVER
	case tracing.KindClient:
		s.Kind = tracepb.Span_SPAN_KIND_CLIENT
	default:
		s.Kind = tracepb.Span_SPAN_KIND_INTERNAL
	}
	for _, a := range d.Attributes(nil) {
		s.Attributes = append(s.Attributes, otlpAttr(a))
	}
	for i := range d.Events {
		e := &d.Events[i]
		ev := &tracepb.Span_Event{Name: e.Name, TimeUnixNano: uint64(e.Time.UnixNano())}
		for _, a := range e.Attrs() {
			ev.Attributes = append(ev.Attributes, otlpAttr(a))
		}
		s.Events = append(s.Events, ev)
	}
	s.Status = &tracepb.Status{Message: d.StatusMessage}
	switch d.Status {
	case tracing.StatusOK:
		s.Status.Code = tracepb.Status_STATUS_CODE_OK
	case tracing.StatusError:
		s.Status.Code = tracepb.Status_STATUS_CODE_ERROR
	}
	return s
}

// OTLPGRPCConfig configures an OTLP/gRPC exporter.
type OTLPGRPCConfig struct {
	// Endpoint is host:port of the collector's OTLP gRPC receiver.
	Endpoint string
	// TLS, when set, secures the connection; nil is plaintext.
	TLS *tls.Config
	// Headers are sent as gRPC metadata with every export.
	Headers map[string]string
	// DialOptions go after the transport credentials TLS makes, so they
	// may replace them (the control plane's receiver: the proxy's TLS and
	// bearer token, as on its xDS connection).
	DialOptions []grpc.DialOption
	Options
}

// OTLPGRPC exports over OTLP/gRPC (TraceService/Export).
type OTLPGRPC struct {
	*Batcher
}

// NewOTLPGRPC makes an OTLP/gRPC exporter. It does not connect: the
// connection is made, and remade, by the first and later sends.
func NewOTLPGRPC(cfg OTLPGRPCConfig) (*OTLPGRPC, error) {
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("otlp grpc exporter: endpoint: empty")
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	conn, err := grpc.NewClient(cfg.Endpoint, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, cfg.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("otlp grpc exporter: endpoint %q: %w", cfg.Endpoint, err)
	}
	client := coltracepb.NewTraceServiceClient(conn)
	var md []string
	for k, v := range cfg.Headers {
		md = append(md, k, v)
	}
	send := func(ctx context.Context, batch []tracing.SpanData) (int, error) {
		if len(md) > 0 {
			ctx = metadataContext(ctx, md)
		}
		resp, err := client.Export(ctx, OTLPRequest(batch))
		if err != nil {
			if retryableGRPC(status.Code(err)) {
				return 0, fmt.Errorf("export to %s: %w", cfg.Endpoint, err)
			}
			return 0, permanent(fmt.Errorf("export to %s: %w", cfg.Endpoint, err))
		}
		return int(resp.GetPartialSuccess().GetRejectedSpans()), nil
	}
	return &OTLPGRPC{newBatcher("otlp-grpc", send, conn.Close, cfg.Options)}, nil
}

// retryableGRPC is the OTLP spec's list of retryable gRPC codes.
func retryableGRPC(c codes.Code) bool {
	switch c {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange,
		codes.Unavailable, codes.DataLoss, codes.ResourceExhausted:
		return true
	}
	return false
}

// OTLPHTTPConfig configures an OTLP/HTTP exporter.
type OTLPHTTPConfig struct {
	// URL is the traces endpoint, e.g. http://collector:4318/v1/traces.
	URL string
	// Client is the HTTP client; nil is one with Options.Timeout.
	Client *http.Client
	// Headers are sent with every export.
	Headers map[string]string
	Options
}

// OTLPHTTP exports over OTLP/HTTP with binary protobuf bodies.
type OTLPHTTP struct {
	*Batcher
}

// NewOTLPHTTP makes an OTLP/HTTP exporter.
func NewOTLPHTTP(cfg OTLPHTTPConfig) (*OTLPHTTP, error) {
	client, err := httpClient("otlp http exporter", cfg.URL, cfg.Client, &cfg.Options)
	if err != nil {
		return nil, err
	}
	send := func(ctx context.Context, batch []tracing.SpanData) (int, error) {
		body, err := proto.Marshal(OTLPRequest(batch))
		if err != nil {
			return 0, permanent(fmt.Errorf("encode otlp: %w", err))
		}
		respBody, err := post(ctx, client, cfg.URL, "application/x-protobuf", body, cfg.Headers)
		if err != nil {
			return 0, err
		}
		var resp coltracepb.ExportTraceServiceResponse
		if len(respBody) > 0 {
			if err := proto.Unmarshal(respBody, &resp); err != nil {
				return 0, nil // accepted; an unreadable body says nothing of rejects
			}
		}
		return int(resp.GetPartialSuccess().GetRejectedSpans()), nil
	}
	return &OTLPHTTP{newBatcher("otlp-http", send, nil, cfg.Options)}, nil
}

// maxResponse bounds how much of a collector's answer is read.
const maxResponse = 1 << 20

// post sends one request; 429, 502, 503 and 504 (and transport errors)
// are retryable, other non-2xx statuses permanent.
func post(ctx context.Context, client *http.Client, url, contentType string, body []byte, headers map[string]string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, permanent(fmt.Errorf("post %s: %w", url, err))
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post %s: %w", url, err)
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return respBody, nil
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusBadGateway,
		resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
		return nil, fmt.Errorf("post %s: %s", url, resp.Status)
	}
	return nil, permanent(fmt.Errorf("post %s: %s", url, resp.Status))
}

func httpClient(what, url string, c *http.Client, o *Options) (*http.Client, error) {
	if url == "" {
		return nil, fmt.Errorf("%s: url: empty", what)
	}
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return nil, fmt.Errorf("%s: url %q: not an http(s) URL", what, url)
	}
	if c != nil {
		return c, nil
	}
	o.defaults()
	return &http.Client{Timeout: o.Timeout}, nil
}
