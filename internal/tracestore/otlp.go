package tracestore

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP exporters may compress
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// DefaultMaxRequestBytes bounds an OTLP/HTTP request body, after
// decompression; gRPC requests are bounded by the server's message size.
const DefaultMaxRequestBytes = 4 << 20

// AuthorizeServices decides whether the caller of an export (its gRPC
// context) may send spans of the given services (each resource's
// service.name, "" when it has none); an error refuses the whole export
// and is returned to the exporter as it is (a gRPC status).
type AuthorizeServices func(ctx context.Context, services []string) error

// RegisterGRPC serves OTLP's TraceService (the collector's
// opentelemetry.proto.collector.trace.v1.TraceService/Export) on g. With
// authorize set, every export is checked by it first.
func (s *Store) RegisterGRPC(g *grpc.Server, authorize AuthorizeServices) {
	collectorpb.RegisterTraceServiceServer(g, traceService{s: s, authorize: authorize})
}

type traceService struct {
	collectorpb.UnimplementedTraceServiceServer
	s         *Store
	authorize AuthorizeServices
}

// Export stores the spans; spans it refuses are reported as OTLP's
// partial success, never as an error that would make the exporter retry.
// A caller authorize refuses gets its error.
func (t traceService) Export(ctx context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	if t.authorize != nil {
		services := make([]string, 0, len(req.GetResourceSpans()))
		for _, rs := range req.GetResourceSpans() {
			name := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					name = kv.GetValue().GetStringValue()
				}
			}
			services = append(services, name)
		}
		if err := t.authorize(ctx, services); err != nil {
			return nil, err
		}
	}
	return t.s.export(req), nil
}

func (s *Store) export(req *collectorpb.ExportTraceServiceRequest) *collectorpb.ExportTraceServiceResponse {
	resp := &collectorpb.ExportTraceServiceResponse{}
	if n, why := s.Add(req.GetResourceSpans()); n > 0 {
		resp.PartialSuccess = &collectorpb.ExportTracePartialSuccess{RejectedSpans: n, ErrorMessage: why}
	}
	return resp
}

// OTLP/HTTP's encodings: binary protobuf and JSON.
const (
	protobufType = "application/x-protobuf"
	jsonType     = "application/json"
)

// handleOTLP serves OTLP/HTTP's POST /v1/traces with a binary protobuf
// or JSON body, optionally gzip-compressed, and answers in the request's
// encoding. Errors are answered as OTLP specifies: a google.rpc.Status in
// the body, 400 for a body that does not decode, 413 for one over the
// limit, 415 for another content type or encoding.
func (s *Store) handleOTLP(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != protobufType && mt != jsonType) {
		otlpError(w, protobufType, http.StatusUnsupportedMediaType, codes.InvalidArgument,
			fmt.Sprintf("Content-Type %q: want %s or %s", r.Header.Get("Content-Type"), protobufType, jsonType))
		return
	}
	limit := s.opts.MaxRequestBytes
	body := http.MaxBytesReader(w, r.Body, limit)
	var src io.Reader = body
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			otlpError(w, mt, http.StatusBadRequest, codes.InvalidArgument, "Content-Encoding gzip: body is not gzip: "+err.Error())
			return
		}
		defer zr.Close()
		src = zr
	default:
		otlpError(w, mt, http.StatusUnsupportedMediaType, codes.InvalidArgument, fmt.Sprintf("Content-Encoding %q: only gzip is accepted", enc))
		return
	}
	raw, err := io.ReadAll(io.LimitReader(src, limit+1))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig) || int64(len(raw)) > limit:
		otlpError(w, mt, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, fmt.Sprintf("request body is larger than %d bytes", limit))
		return
	case err != nil:
		otlpError(w, mt, http.StatusBadRequest, codes.InvalidArgument, "read request body: "+err.Error())
		return
	}
	req := &collectorpb.ExportTraceServiceRequest{}
	if mt == jsonType {
		req, err = decodeOTLPJSON(raw)
	} else {
		err = proto.Unmarshal(raw, req)
	}
	if err != nil {
		otlpError(w, mt, http.StatusBadRequest, codes.InvalidArgument, "request body is not an ExportTraceServiceRequest: "+err.Error())
		return
	}
	out, err := encodeAs(mt, s.export(req))
	if err != nil {
		otlpError(w, mt, http.StatusInternalServerError, codes.Internal, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", mt)
	_, _ = w.Write(out)
}

func encodeAs(mediaType string, m proto.Message) ([]byte, error) {
	if mediaType == jsonType {
		return protojson.Marshal(m)
	}
	return proto.Marshal(m)
}

func otlpError(w http.ResponseWriter, mediaType string, status int, code codes.Code, msg string) {
	b, _ := encodeAs(mediaType, &statuspb.Status{Code: int32(code), Message: msg})
	w.Header().Set("Content-Type", mediaType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
