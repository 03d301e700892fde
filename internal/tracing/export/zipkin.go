package export

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"

	"github.com/openzipkin/zipkin-go/model"

	"github.com/meshlens/meshlens/internal/tracing"
)

// ZipkinSpan converts a span to Zipkin's model: the attributes become
// tags, events become annotations ("retry attempt=2"), an error status
// the "error" tag, and the peer the remote endpoint.
func ZipkinSpan(d *tracing.SpanData) model.SpanModel {
	m := model.SpanModel{
		SpanContext: model.SpanContext{
			TraceID: model.TraceID{
				High: binary.BigEndian.Uint64(d.TraceID[:8]),
				Low:  binary.BigEndian.Uint64(d.TraceID[8:]),
			},
			ID:    model.ID(binary.BigEndian.Uint64(d.SpanID[:])),
			Debug: d.Debug,
		},
		Name:      d.DisplayName(),
		Timestamp: d.Start,
		Duration:  d.End.Sub(d.Start),
		Tags:      map[string]string{},
	}
	if d.ParentID != [8]byte{} {
		p := model.ID(binary.BigEndian.Uint64(d.ParentID[:]))
		m.ParentID = &p
	}
	switch d.Kind {
	case tracing.KindServer:
		m.Kind = model.Server
	case tracing.KindClient:
		m.Kind = model.Client
	}
	if d.Resource != nil && d.Resource.ServiceName != "" {
		m.LocalEndpoint = &model.Endpoint{ServiceName: d.Resource.ServiceName}
	}
	if d.HTTP.Peer.IsValid() {
		ep := &model.Endpoint{Port: d.HTTP.Peer.Port()}
		ip := net.IP(d.HTTP.Peer.Addr().Unmap().AsSlice())
		if d.HTTP.Peer.Addr().Unmap().Is4() {
			ep.IPv4 = ip
		} else {
			ep.IPv6 = ip
		}
		if d.Kind == tracing.KindClient {
			ep.ServiceName = d.Mesh.VirtualService
		}
		m.RemoteEndpoint = ep
	}
	for _, a := range d.Attributes(nil) {
		m.Tags[a.Key] = a.Value()
	}
	if d.Status == tracing.StatusError {
		msg := d.StatusMessage
		if msg == "" {
			msg = "true"
		}
		m.Tags["error"] = msg
	}
	for i := range d.Events {
		e := &d.Events[i]
		v := e.Name
		for _, a := range e.Attrs() {
			v += " " + a.Key + "=" + a.Value()
		}
		m.Annotations = append(m.Annotations, model.Annotation{Timestamp: e.Time, Value: v})
	}
	return m
}

// ZipkinConfig configures a Zipkin exporter.
type ZipkinConfig struct {
	// URL is the collector's v2 endpoint, e.g.
	// http://zipkin:9411/api/v2/spans.
	URL string
	// Client is the HTTP client; nil is one with Options.Timeout.
	Client *http.Client
	Options
}

// Zipkin exports Zipkin v2 JSON (POST a JSON array of spans).
type Zipkin struct {
	*Batcher
}

// NewZipkin makes a Zipkin exporter.
func NewZipkin(cfg ZipkinConfig) (*Zipkin, error) {
	client, err := httpClient("zipkin exporter", cfg.URL, cfg.Client, &cfg.Options)
	if err != nil {
		return nil, err
	}
	send := func(ctx context.Context, batch []tracing.SpanData) (int, error) {
		spans := make([]model.SpanModel, len(batch))
		for i := range batch {
			spans[i] = ZipkinSpan(&batch[i])
		}
		body, err := json.Marshal(spans)
		if err != nil {
			return 0, permanent(fmt.Errorf("encode zipkin: %w", err))
		}
		_, err = post(ctx, client, cfg.URL, "application/json", body, nil)
		return 0, err
	}
	return &Zipkin{newBatcher("zipkin", send, nil, cfg.Options)}, nil
}
