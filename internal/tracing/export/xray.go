package export

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
)

// XRayHeader starts every datagram sent to an X-Ray daemon.
const XRayHeader = `{"format": "json", "version": 1}` + "\n"

// XRayOrigin is the segment origin App Mesh's Envoy sets.
const XRayOrigin = "AWS::AppMesh::Proxy"

// maxXRayDocument is the daemon's limit on one datagram.
const maxXRayDocument = 64 * 1024

// Segment is an X-Ray segment document, or an independent subsegment
// when Type is "subsegment" (then ParentID and TraceID are required).
// Fields follow AWS's segment document reference.
type Segment struct {
	Name      string  `json:"name"`
	ID        string  `json:"id"`
	TraceID   string  `json:"trace_id"`
	ParentID  string  `json:"parent_id,omitempty"`
	Type      string  `json:"type,omitempty"`
	StartTime float64 `json:"start_time"`
	EndTime   float64 `json:"end_time"`
	// Namespace is "remote" for a call to another service.
	Namespace string `json:"namespace,omitempty"`
	Origin    string `json:"origin,omitempty"`
	// Error is a 4xx, Throttle a 429, Fault a 5xx (or no response).
	Error    bool `json:"error,omitempty"`
	Throttle bool `json:"throttle,omitempty"`
	Fault    bool `json:"fault,omitempty"`

	HTTP *SegmentHTTP `json:"http,omitempty"`
	// AWS holds, as App Mesh's Envoy writes it, {"app_mesh": {"mesh_name",
	// "virtual_node_name" or "virtual_gateway_name"}}.
	AWS map[string]any `json:"aws,omitempty"`
	// Annotations are indexed for filter expressions: keys of letters,
	// digits and "_" only; values strings, numbers or booleans.
	Annotations map[string]any `json:"annotations,omitempty"`
	// Metadata holds every span attribute under "meshlens" (not indexed).
	Metadata map[string]map[string]any `json:"metadata,omitempty"`
}

// SegmentHTTP is a segment's http object.
type SegmentHTTP struct {
	Request  *SegmentRequest  `json:"request,omitempty"`
	Response *SegmentResponse `json:"response,omitempty"`
}

// SegmentRequest is http.request.
type SegmentRequest struct {
	Method    string `json:"method,omitempty"`
	URL       string `json:"url,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	ClientIP  string `json:"client_ip,omitempty"`
	// Traced is set on a subsegment whose callee is traced too.
	Traced bool `json:"traced,omitempty"`
}

// SegmentResponse is http.response.
type SegmentResponse struct {
	Status int `json:"status,omitempty"`
}

// XRaySegment converts a span: a server span becomes a segment (its
// parent, when the caller was traced, is parent_id), a client span an
// independent subsegment of its server span, in the "remote" namespace
// and named for the service it called.
func XRaySegment(d *tracing.SpanData) Segment {
	s := Segment{
		ID:        hex.EncodeToString(d.SpanID[:]),
		TraceID:   propagation.FormatXRayTraceID(d.TraceID),
		StartTime: epochSeconds(d.Start),
		EndTime:   epochSeconds(d.End),
		Origin:    XRayOrigin,
	}
	if d.ParentID != [8]byte{} {
		s.ParentID = hex.EncodeToString(d.ParentID[:])
	}
	res := d.Resource
	if res == nil {
		res = &tracing.Resource{}
	}
	req := &SegmentRequest{Method: d.HTTP.Method, UserAgent: d.HTTP.UserAgent}
	if d.HTTP.ServerAddress != "" {
		req.URL = "http://" + d.HTTP.ServerAddress + d.HTTP.Path
	} else {
		req.URL = d.HTTP.Path
	}
	if d.Kind == tracing.KindClient {
		s.Type = "subsegment"
		s.Namespace = "remote"
		s.Name = firstNonEmpty(d.Mesh.VirtualService, d.HTTP.ServerAddress, d.Mesh.UpstreamCluster, d.DisplayName())
		req.Traced = true
	} else {
		s.Name = segmentName(res)
		if d.HTTP.Peer.IsValid() {
			req.ClientIP = d.HTTP.Peer.Addr().String()
		}
	}
	s.Name = sanitizeSegmentName(s.Name)
	s.HTTP = &SegmentHTTP{Request: req}
	if c := d.HTTP.StatusCode; c != 0 {
		s.HTTP.Response = &SegmentResponse{Status: c}
	}
	switch c := d.HTTP.StatusCode; {
	case c == 429:
		s.Error, s.Throttle = true, true
	case c >= 400 && c < 500:
		s.Error = true
	case c >= 500:
		s.Fault = true
	}
	if d.Status == tracing.StatusError && !s.Error {
		s.Fault = true
	}
	if res.Mesh != "" {
		am := map[string]any{"mesh_name": res.Mesh}
		if res.VirtualNode != "" {
			am["virtual_node_name"] = res.VirtualNode
		}
		if res.VirtualGateway != "" {
			am["virtual_gateway_name"] = res.VirtualGateway
		}
		s.AWS = map[string]any{"app_mesh": am}
	}
	s.Annotations = map[string]any{}
	meta := map[string]any{}
	for _, a := range d.Attributes(nil) {
		var v any
		switch a.Type {
		case tracing.TypeInt:
			v = a.Int
		case tracing.TypeBool:
			v = a.Bool
		case tracing.TypeFloat:
			v = a.Float
		default:
			v = a.Str
		}
		meta[a.Key] = v
		if strings.HasPrefix(a.Key, "meshlens.") || strings.HasPrefix(a.Key, "rpc.") || a.Key == tracing.KeyHTTPRoute {
			s.Annotations[annotationKey(a.Key)] = v
		}
	}
	if d.StatusMessage != "" {
		meta["status.message"] = d.StatusMessage
	}
	for i := range d.Events {
		e := &d.Events[i]
		ev := map[string]any{"time": epochSeconds(e.Time)}
		for _, a := range e.Attrs() {
			ev[a.Key] = a.Value()
		}
		meta["event."+e.Name+"."+fmt.Sprint(i)] = ev
	}
	s.Metadata = map[string]map[string]any{"meshlens": meta}
	return s
}

func segmentName(r *tracing.Resource) string {
	node := firstNonEmpty(r.VirtualNode, r.VirtualGateway, r.ServiceName)
	if r.Mesh != "" && node != "" {
		return r.Mesh + "/" + node
	}
	return firstNonEmpty(node, "meshlens")
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// sanitizeSegmentName keeps the characters X-Ray allows in a name
// (letters, digits, whitespace and _ . : / % & # = + \ - @), replacing
// others with "_", and the first 200 characters.
func sanitizeSegmentName(n string) string {
	b := []rune(n)
	if len(b) > 200 {
		b = b[:200]
	}
	for i, r := range b {
		if !validSegmentNameRune(r) {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "meshlens"
	}
	return string(b)
}

func validSegmentNameRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == ' ':
		return true
	case strings.ContainsRune(`_.:/%&#=+\-@`, r):
		return true
	case r > 127:
		return true // Unicode letters are allowed; leave the rest to X-Ray
	}
	return false
}

// annotationKey maps an attribute key to the annotation alphabet:
// "meshlens.upstream_cluster" → "meshlens_upstream_cluster".
func annotationKey(k string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, k)
}

func epochSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

// XRayConfig configures an X-Ray exporter.
type XRayConfig struct {
	// Address is the daemon's UDP host:port (127.0.0.1:2000 by default,
	// as ENABLE_ENVOY_XRAY_TRACING uses it).
	Address string
	Options
}

// XRay sends segment documents to an X-Ray daemon over UDP, one
// document per datagram. UDP sends are not retried: a datagram the
// daemon missed is gone, and a refused one (no daemon) counts as failed.
type XRay struct {
	*Batcher
}

// NewXRay makes an X-Ray exporter.
func NewXRay(cfg XRayConfig) (*XRay, error) {
	addr := cfg.Address
	if addr == "" {
		addr = "127.0.0.1:2000"
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("xray exporter: address %q: %w", addr, err)
	}
	cfg.Options.MaxRetries = -1
	send := func(ctx context.Context, batch []tracing.SpanData) (int, error) {
		failed := 0
		var firstErr error
		for i := range batch {
			doc, err := json.Marshal(XRaySegment(&batch[i]))
			if err == nil && len(XRayHeader)+len(doc) > maxXRayDocument {
				err = fmt.Errorf("segment of %d bytes exceeds %d", len(doc), maxXRayDocument)
			}
			if err == nil {
				if dl, ok := ctx.Deadline(); ok {
					_ = conn.SetWriteDeadline(dl)
				}
				_, err = conn.Write(append([]byte(XRayHeader), doc...))
			}
			if err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		if failed == len(batch) && firstErr != nil {
			return 0, permanent(fmt.Errorf("send segments to %s: %w", addr, firstErr))
		}
		return failed, nil
	}
	return &XRay{newBatcher("xray", send, conn.Close, cfg.Options)}, nil
}
