package table

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	tracev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/trace/v3"
	hcmv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingtypev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/tracing/v3"
	typev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/type/v3"
)

// TracingProvider is the kind of collector a connection manager's spans
// go to.
type TracingProvider uint8

// The providers of Envoy's HttpConnectionManager.tracing.provider.
const (
	TracingOTLP   TracingProvider = iota + 1 // envoy.tracers.opentelemetry, OTLP over gRPC
	TracingZipkin                            // envoy.tracers.zipkin, v2 JSON over HTTP
	TracingXRay                              // envoy.tracers.xray, segments over UDP
)

// String names the provider as the tracing.<provider>.* stats do.
func (p TracingProvider) String() string {
	switch p {
	case TracingOTLP:
		return "opentelemetry"
	case TracingZipkin:
		return "zipkin"
	case TracingXRay:
		return "xray"
	}
	return "unknown"
}

// Tracing is a connection manager's tracing field: where its spans go
// and how many requests start a trace.
type Tracing struct {
	Provider TracingProvider
	// Cluster is the collector cluster (OTLP's envoy_grpc cluster_name,
	// Zipkin's collector_cluster); empty for X-Ray.
	Cluster string
	// Endpoint is host:port of the collector: the collector cluster's
	// first endpoint, or X-Ray's daemon_endpoint.
	Endpoint string
	// Path is Zipkin's collector_endpoint (e.g. /api/v2/spans).
	Path string
	// ServiceName is OTLP's service_name or X-Ray's segment_name.
	ServiceName string
	// RandomPercent is random_sampling (Envoy's default 100).
	RandomPercent float64
	// Tags are the literal custom_tags (tag → value).
	Tags map[string]string
	// HeaderTags are the request_header custom_tags.
	HeaderTags []HeaderTag
}

// HeaderTag is a span attribute read from a request header.
type HeaderTag struct {
	Tag, Header, Default string
}

// Key identifies the exporter a Tracing needs: equal keys share one.
func (t *Tracing) Key() string {
	return t.Provider.String() + "|" + t.Cluster + "|" + t.Endpoint + "|" + t.Path + "|" + t.ServiceName
}

// tracing compiles HttpConnectionManager.tracing; nil when there is none
// or it names no provider (Envoy then makes no spans either).
func (c *compiler) tracing(t *hcmv3.HttpConnectionManager_Tracing) (*Tracing, error) {
	if t == nil || t.GetProvider() == nil {
		return nil, nil
	}
	out := &Tracing{RandomPercent: 100}
	if p := t.GetRandomSampling(); p != nil {
		v, err := percent(p)
		if err != nil {
			return nil, fmt.Errorf("random_sampling: %w", err)
		}
		out.RandomPercent = v
	}
	for i, tag := range t.GetCustomTags() {
		switch ty := tag.GetType().(type) {
		case *tracingtypev3.CustomTag_Literal_:
			if out.Tags == nil {
				out.Tags = map[string]string{}
			}
			out.Tags[tag.GetTag()] = ty.Literal.GetValue()
		case *tracingtypev3.CustomTag_RequestHeader:
			out.HeaderTags = append(out.HeaderTags, HeaderTag{Tag: tag.GetTag(), Header: http.CanonicalHeaderKey(ty.RequestHeader.GetName()), Default: ty.RequestHeader.GetDefaultValue()})
		default:
			return nil, fmt.Errorf("custom_tags[%d] (%q): only literal and request_header tags are supported", i, tag.GetTag())
		}
	}
	prov := t.GetProvider()
	if prov.GetTypedConfig() == nil {
		return nil, fmt.Errorf("provider %q: no typed_config", prov.GetName())
	}
	var err error
	switch prov.GetTypedConfig().GetTypeUrl() {
	case "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig":
		err = c.otlpProvider(prov, out)
	case "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig":
		err = c.zipkinProvider(prov, out)
	case "type.googleapis.com/envoy.config.trace.v3.XRayConfig":
		err = xrayProvider(prov, out)
	default:
		err = fmt.Errorf("typed_config %s "+errNotSupported+"; use OpenTelemetry, Zipkin or X-Ray", prov.GetTypedConfig().GetTypeUrl())
	}
	if err != nil {
		return nil, fmt.Errorf("provider %q: %w", prov.GetName(), err)
	}
	return out, nil
}

func (c *compiler) otlpProvider(prov *tracev3.Tracing_Http, out *Tracing) error {
	var cfg tracev3.OpenTelemetryConfig
	if err := unpack(prov.GetTypedConfig(), &cfg); err != nil {
		return err
	}
	if cfg.GetHttpService() != nil {
		return errors.New("http_service " + errNotSupported + "; use grpc_service")
	}
	name := cfg.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	if name == "" {
		return errors.New("grpc_service.envoy_grpc.cluster_name is required")
	}
	ep, err := c.collector(name)
	if err != nil {
		return fmt.Errorf("grpc_service.envoy_grpc.cluster_name: %w", err)
	}
	out.Provider, out.Cluster, out.Endpoint, out.ServiceName = TracingOTLP, name, ep, cfg.GetServiceName()
	return nil
}

func (c *compiler) zipkinProvider(prov *tracev3.Tracing_Http, out *Tracing) error {
	var cfg tracev3.ZipkinConfig
	if err := unpack(prov.GetTypedConfig(), &cfg); err != nil {
		return err
	}
	if v := cfg.GetCollectorEndpointVersion(); v != tracev3.ZipkinConfig_HTTP_JSON {
		return fmt.Errorf("collector_endpoint_version %s "+errNotSupported+"; use HTTP_JSON", v)
	}
	name := cfg.GetCollectorCluster()
	if name == "" {
		return errors.New("collector_cluster is required")
	}
	if cfg.GetCollectorEndpoint() == "" || cfg.GetCollectorEndpoint()[0] != '/' {
		return fmt.Errorf("collector_endpoint %q: a path starting with / is required", cfg.GetCollectorEndpoint())
	}
	ep, err := c.collector(name)
	if err != nil {
		return fmt.Errorf("collector_cluster: %w", err)
	}
	out.Provider, out.Cluster, out.Endpoint, out.Path = TracingZipkin, name, ep, cfg.GetCollectorEndpoint()
	return nil
}

func xrayProvider(prov *tracev3.Tracing_Http, out *Tracing) error {
	var cfg tracev3.XRayConfig
	if err := unpack(prov.GetTypedConfig(), &cfg); err != nil {
		return err
	}
	out.Provider, out.ServiceName, out.Endpoint = TracingXRay, cfg.GetSegmentName(), "127.0.0.1:2000"
	if sa := cfg.GetDaemonEndpoint(); sa != nil {
		if sa.GetAddress() == "" || sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
			return fmt.Errorf("daemon_endpoint: address %q port %d is not a host and port", sa.GetAddress(), sa.GetPortValue())
		}
		out.Endpoint = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	}
	return nil
}

// collector is host:port of a collector cluster's first endpoint.
func (c *compiler) collector(name string) (string, error) {
	cl, ok := c.clusters[name]
	if !ok {
		return "", fmt.Errorf("cluster %q %w", name, ErrMissing)
	}
	for _, e := range cl.Endpoints {
		if e.Address.IsValid() {
			return e.Address.String(), nil
		}
		if e.Hostname != "" {
			return e.Hostname, nil
		}
	}
	return "", fmt.Errorf("cluster %q has no endpoint", name)
}

// percent reads an Envoy Percent, 0 to 100.
func percent(p *typev3.Percent) (float64, error) {
	v := p.GetValue()
	if v < 0 || v > 100 || v != v {
		return 0, fmt.Errorf("%v is not a percentage between 0 and 100", v)
	}
	return v, nil
}

// fractionalPercent reads a route's FractionalPercent as a percentage.
func fractionalPercent(p *typev3.FractionalPercent) (float64, error) {
	var den float64
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		den = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		den = 10000
	case typev3.FractionalPercent_MILLION:
		den = 1000000
	default:
		return 0, fmt.Errorf("denominator %s is not known", p.GetDenominator())
	}
	return min(float64(p.GetNumerator())*100/den, 100), nil
}
