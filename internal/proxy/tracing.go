package proxy

import (
	"context"
	"fmt"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/table"
	"github.com/meshlens/meshlens/internal/stats"
	"github.com/meshlens/meshlens/internal/tracing"
	"github.com/meshlens/meshlens/internal/tracing/export"
	"github.com/meshlens/meshlens/internal/tracing/propagation"
	"github.com/meshlens/meshlens/internal/tracing/sampling"
	"github.com/meshlens/meshlens/internal/xdsmeta"
)

// Tracing: each distinct provider of the snapshot's connection managers
// (table.Tracing.Key) gets one exporter, kept across snapshots while its
// key is unchanged and shut down (flushing what it queued) when no
// connection manager names it any more. Each HTTP chain gets a Tracer of
// its own (its sampling, its routes' overrides, its resource) over the
// shared exporter.

// BuiltinTraceCluster is the collector cluster of the control plane's
// own trace store (the builtin provider): its exporter is the Tracer's
// Store, which also receives the spans the tail rule keeps.
const BuiltinTraceCluster = "cds_tracing_meshlens"

// TailLatency is the latency from which the built-in store keeps a
// request that head sampling dropped (the tail rule; errors are kept
// too).
const TailLatency = time.Second

// DefaultTraceFormats are the formats the proxy writes on upstream
// requests: W3C Trace Context and B3 (multi-header), plus X-Ray's
// X-Amzn-Trace-Id when the provider is X-Ray. Every format that arrives
// is read.
var DefaultTraceFormats = mustFormats("w3c,b3multi")

func mustFormats(s string) propagation.Formats {
	fs, err := propagation.ParseFormats(s)
	if err != nil {
		panic(err)
	}
	return fs
}

var xrayFormats = mustFormats("w3c,b3multi,xray")

// exporterRT is one provider's exporter with its stats scope.
type exporterRT struct {
	key string
	exp interface {
		tracing.Exporter
		Shutdown(ctx context.Context) error
	}
	scope *stats.Scope
}

func (e *exporterRT) shutdown(ctx context.Context) {
	_ = e.exp.Shutdown(ctx)
	if e.scope != nil {
		e.scope.Release()
	}
}

// provisionExporters finds or builds the exporter of every provider the
// snapshot's connection managers name.
func (t *applyTxn) provisionExporters() error {
	p := t.p
	t.exps = map[string]*exporterRT{}
	for _, l := range t.s.Listeners {
		for _, c := range allChains(l) {
			if c.HTTP == nil {
				continue
			}
			tr := p.effectiveTracing(c.HTTP.Tracing)
			if tr == nil {
				continue
			}
			key := tr.Key()
			if t.exps[key] != nil {
				continue
			}
			if e := p.exporters[key]; e != nil {
				t.exps[key] = e
				continue
			}
			e, err := p.newExporter(tr)
			if err != nil {
				return fmt.Errorf("apply: listener %s: chain %q: tracing: %w", l.Name, c.Name, err)
			}
			t.exps[key] = e
			t.createdExps = append(t.createdExps, e)
		}
	}
	return nil
}

// newExporter builds the exporter of a provider; its counters are
// tracing.<provider>.spans_sent, spans_dropped and spans_failed.
func (p *Proxy) newExporter(tr *table.Tracing) (*exporterRT, error) {
	opts := export.Options{
		Timeout: 5 * time.Second,
		Logger:  p.log.With("tracing", tr.Provider.String(), "endpoint", tr.Endpoint),
	}
	var scope *stats.Scope
	if p.dataStats != nil {
		scope = p.dataStats.Scope("tracing." + tr.Provider.String() + ".")
		opts.Stats = export.Stats{
			Sent:    scope.Counter("spans_sent"),
			Dropped: scope.Counter("spans_dropped"),
			Failed:  scope.Counter("spans_failed"),
		}
	}
	e := &exporterRT{key: tr.Key(), scope: scope}
	var err error
	switch tr.Provider {
	case table.TracingOTLP:
		cfg := export.OTLPGRPCConfig{Endpoint: tr.Endpoint, Options: opts}
		if tr.Cluster == xdsmeta.BuiltinTracingClusterName && p.cfg.ControlPlaneDial != nil {
			cfg.DialOptions = p.cfg.ControlPlaneDial()
		}
		e.exp, err = export.NewOTLPGRPC(cfg)
	case table.TracingZipkin:
		e.exp, err = export.NewZipkin(export.ZipkinConfig{URL: "http://" + tr.Endpoint + tr.Path, Options: opts})
	case table.TracingXRay:
		e.exp, err = export.NewXRay(export.XRayConfig{Address: tr.Endpoint, Options: opts})
	default:
		err = fmt.Errorf("provider %v is not supported", tr.Provider)
	}
	if err != nil {
		if scope != nil {
			scope.Release()
		}
		return nil, err
	}
	return e, nil
}

// chainTracer is an HTTP chain's Tracer over its provider's exporter, and
// the formats it writes; nil when the chain does not trace.
func (t *applyTxn) chainTracer(c *table.FilterChain) (*tracing.Tracer, propagation.Formats, error) {
	tr := t.p.effectiveTracing(c.HTTP.Tracing)
	if tr == nil {
		return nil, 0, nil
	}
	scfg := sampling.Config{Percent: tr.RandomPercent}
	for _, vh := range c.HTTP.Routes.VirtualHosts {
		for _, r := range vh.Routes {
			if r.TracingPercent != nil && r.Name != "" {
				if scfg.Routes == nil {
					scfg.Routes = map[string]float64{}
				}
				scfg.Routes[r.Name] = *r.TracingPercent
			}
		}
	}
	cfg := tracing.Config{Resource: traceResource(tr)}
	e := t.exps[tr.Key()]
	if tr.Cluster == BuiltinTraceCluster {
		cfg.Store = e.exp
		scfg.Tail = sampling.Tail{Errors: true, Latency: TailLatency}
	} else {
		cfg.Exporters = []tracing.Exporter{e.exp}
	}
	if o := t.p.cfg.Tracing; o != nil && o.Provider == table.TracingXRay {
		scfg.Rules = o.Rules
	}
	smp, err := sampling.New(scfg)
	if err != nil {
		return nil, 0, err
	}
	cfg.Sampler = smp
	fs := DefaultTraceFormats
	if tr.Provider == table.TracingXRay {
		fs = xrayFormats
	}
	return tracing.New(cfg), fs, nil
}

// traceResource names the proxy on its spans: service.name is the
// provider's service (the control plane's "<mesh>/<node>"), the mesh and
// node or gateway come from the custom tags the control plane sets.
func traceResource(tr *table.Tracing) tracing.Resource {
	res := tracing.Resource{
		ServiceName:    tr.ServiceName,
		Mesh:           tr.Tags[tracing.KeyMesh],
		VirtualNode:    tr.Tags[tracing.KeyVirtualNode],
		VirtualGateway: tr.Tags[tracing.KeyVirtualGateway],
	}
	if res.ServiceName == "" {
		name := res.VirtualNode
		if name == "" {
			name = res.VirtualGateway
		}
		if res.Mesh != "" && name != "" {
			res.ServiceName = res.Mesh + "/" + name
		}
	}
	if res.ServiceName == "" {
		res.ServiceName = "meshlens"
	}
	return res
}

// extraTags are the literal custom tags the resource does not carry.
func extraTags(tr *table.Tracing) []tracing.Attr {
	var out []tracing.Attr
	if tr == nil {
		return nil
	}
	for k, v := range tr.Tags {
		switch k {
		case tracing.KeyMesh, tracing.KeyVirtualNode, tracing.KeyVirtualGateway:
			continue
		}
		out = append(out, tracing.String(k, v))
	}
	return out
}

// headerTags are the request_header custom tags.
func headerTags(tr *table.Tracing) []table.HeaderTag {
	if tr == nil {
		return nil
	}
	return tr.HeaderTags
}

// retireExporters shuts down, in the background, the exporters the new
// snapshot no longer names.
func (t *applyTxn) retireExporters() {
	for key, e := range t.p.exporters {
		if t.exps[key] != e {
			t.retired = append(t.retired, e.shutdown)
		}
	}
	t.p.exporters = t.exps
}

// shutdownExporters flushes and stops every exporter (proxy shutdown).
func (p *Proxy) shutdownExporters(ctx context.Context) {
	for key, e := range p.exporters {
		e.shutdown(ctx)
		delete(p.exporters, key)
	}
}

// TracingOverride is a tracing provider set by the environment.
type TracingOverride struct {
	// Provider, Endpoint, Path and ServiceName are table.Tracing's.
	Provider    table.TracingProvider
	Endpoint    string
	Path        string
	ServiceName string
	// Percent, when set, replaces the sampling percentage; else the
	// connection manager's applies, or DefaultPercent where xDS gave no
	// tracing.
	Percent        *float64
	DefaultPercent float64
	// Tags name the proxy (meshlens.mesh, meshlens.virtual_node or
	// virtual_gateway) where xDS gave no tracing.
	Tags map[string]string
	// Rules, when set, are X-Ray local sampling rules deciding requests
	// with no incoming decision in place of the percentages.
	Rules *sampling.Rules
}

// effectiveTracing is a connection manager's tracing with the
// environment's provider in place of the xDS one: the provider, its
// address and service name are the environment's, the custom tags and
// route overrides stay xDS's, and the percentage is the environment's
// when it sets one, else xDS's.
func (p *Proxy) effectiveTracing(x *table.Tracing) *table.Tracing {
	o := p.cfg.Tracing
	if o == nil {
		return x
	}
	out := &table.Tracing{Provider: o.Provider, Endpoint: o.Endpoint, Path: o.Path, ServiceName: o.ServiceName, RandomPercent: o.DefaultPercent, Tags: o.Tags}
	if x != nil {
		out.Tags, out.HeaderTags, out.RandomPercent = x.Tags, x.HeaderTags, x.RandomPercent
		if out.ServiceName == "" {
			out.ServiceName = x.ServiceName
		}
	}
	if o.Percent != nil {
		out.RandomPercent = *o.Percent
	}
	return out
}
