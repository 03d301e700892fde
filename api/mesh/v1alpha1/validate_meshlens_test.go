package v1alpha1

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func routeExt(r *Resource) *RouteMeshlens {
	if r.RouteSpec.HTTPRoute.Meshlens == nil {
		r.RouteSpec.HTTPRoute.Meshlens = &RouteMeshlens{}
	}
	return r.RouteSpec.HTTPRoute.Meshlens
}

func listenerExt(r *Resource) *ListenerMeshlens {
	l := nodeListener(r)
	if l.Meshlens == nil {
		l.Meshlens = &ListenerMeshlens{}
	}
	return l.Meshlens
}

func gwListenerExt(r *Resource) *GatewayListenerMeshlens {
	l := &r.VirtualGatewaySpec.Listeners[0]
	if l.Meshlens == nil {
		l.Meshlens = &GatewayListenerMeshlens{}
	}
	return l.Meshlens
}

func gwRouteExt(r *Resource) *GatewayRouteMeshlens {
	if r.GatewayRouteSpec.HTTPRoute.Meshlens == nil {
		r.GatewayRouteSpec.HTTPRoute.Meshlens = &GatewayRouteMeshlens{}
	}
	return r.GatewayRouteSpec.HTTPRoute.Meshlens
}

func meshTracing(r *Resource) *Tracing {
	if r.MeshSpec.Meshlens == nil {
		r.MeshSpec.Meshlens = &MeshMeshlens{Tracing: &Tracing{}}
	}
	return r.MeshSpec.Meshlens.Tracing
}

func goodBucket() *RateLimit { return &RateLimit{MaxTokens: 10, FillInterval: dur("s", 1)} }

func goodCORS() *CORSPolicy {
	return &CORSPolicy{AllowOrigins: []OriginMatch{{Exact: "https://a.example"}}}
}

// TestValidateMeshlens has one case per rule of the meshlens extension;
// want is every error the case must produce, exactly.
func TestValidateMeshlens(t *testing.T) {
	t.Parallel()
	const rf = "spec.httpRoute.meshlens.fault"
	const rl = "spec.httpRoute.meshlens.rateLimit"
	const gc = "spec.listeners[0].meshlens.cors"
	const mt = "spec.meshlens.tracing"
	cases := []struct {
		name   string
		kind   Kind
		mutate func(r *Resource)
		want   []string
	}{
		// Fault.
		{"fault valid", KindRoute, func(r *Resource) {
			routeExt(r).Fault = &Fault{
				Delay: &FaultDelay{FixedDelay: dur("ms", 1500), Percentage: ptr(12.5)},
				Abort: &FaultAbort{HTTPStatus: 503, Percentage: ptr(0.0001)},
			}
		}, nil},
		{"fault header-controlled only", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{HeaderControlled: true} }, nil},
		{"fault empty", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{} },
			[]string{rf + ": must set at least one of delay, abort, headerControlled"}},
		{"fault delay required", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{Delay: &FaultDelay{}} },
			[]string{rf + ".delay.fixedDelay: is required"}},
		{"fault delay zero", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{Delay: &FaultDelay{FixedDelay: dur("ms", 0)}} },
			[]string{rf + ".delay.fixedDelay.value: must be between 1 ms and 3600 s"}},
		{"fault delay too long", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{Delay: &FaultDelay{FixedDelay: dur("s", 3601)}} },
			[]string{rf + ".delay.fixedDelay.value: must be between 1 ms and 3600 s"}},
		{"fault delay unit", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{Delay: &FaultDelay{FixedDelay: dur("m", 1)}} },
			[]string{rf + ".delay.fixedDelay.unit: must be one of s, ms"}},
		{"fault percentage high", KindRoute, func(r *Resource) {
			routeExt(r).Fault = &Fault{Delay: &FaultDelay{FixedDelay: dur("s", 1), Percentage: ptr(100.5)}}
		}, []string{rf + ".delay.percentage: must be between 0 and 100"}},
		{"fault percentage negative", KindRoute, func(r *Resource) {
			routeExt(r).Fault = &Fault{Abort: &FaultAbort{HTTPStatus: 500, Percentage: ptr(-1.0)}}
		}, []string{rf + ".abort.percentage: must be between 0 and 100"}},
		{"fault percentage precision", KindRoute, func(r *Resource) {
			routeExt(r).Fault = &Fault{Abort: &FaultAbort{HTTPStatus: 500, Percentage: ptr(0.00001)}}
		}, []string{rf + ".abort.percentage: must have at most 4 decimal places"}},
		{"fault abort union", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{Abort: &FaultAbort{HTTPStatus: 500, GRPCStatus: 14}} },
			[]string{rf + ".abort: exactly one of httpStatus, grpcStatus must be set"}},
		{"fault abort none", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{Abort: &FaultAbort{}} },
			[]string{rf + ".abort: exactly one of httpStatus, grpcStatus must be set"}},
		{"fault http status", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{Abort: &FaultAbort{HTTPStatus: 600}} },
			[]string{rf + ".abort.httpStatus: must be between 200 and 599"}},
		{"fault http status low", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{Abort: &FaultAbort{HTTPStatus: 199}} },
			[]string{rf + ".abort.httpStatus: must be between 200 and 599"}},
		{"fault grpc status", KindRoute, func(r *Resource) { routeExt(r).Fault = &Fault{Abort: &FaultAbort{GRPCStatus: 17}} },
			[]string{rf + ".abort.grpcStatus: must be between 1 and 16"}},
		{"fault on a grpc route", KindRoute, func(r *Resource) {
			r.RouteSpec.GRPCRoute = &GRPCRoute{
				Action:   &GRPCRouteAction{WeightedTargets: targets(1)},
				Match:    &GRPCRouteMatch{ServiceName: "s"},
				Meshlens: &RouteMeshlens{Fault: &Fault{Abort: &FaultAbort{GRPCStatus: -1}}},
			}
			r.RouteSpec.HTTPRoute = nil
		}, []string{"spec.grpcRoute.meshlens.fault.abort.grpcStatus: must be between 1 and 16"}},
		{"fault on a node listener", KindVirtualNode, func(r *Resource) { listenerExt(r).Fault = &Fault{Abort: &FaultAbort{HTTPStatus: 0}} },
			[]string{"spec.listeners[0].meshlens.fault.abort: exactly one of httpStatus, grpcStatus must be set"}},
		{"fault on a tcp listener", KindVirtualNode, func(r *Resource) {
			nodeListener(r).PortMapping.Protocol = "tcp"
			listenerExt(r).Fault = &Fault{HeaderControlled: true}
		}, []string{"spec.listeners[0].meshlens.fault: applies only to http, http2 and grpc listeners"}},

		// Rate limit.
		{"rate limit valid", KindRoute, func(r *Resource) { routeExt(r).RateLimit = goodBucket() }, nil},
		{"rate limit on a tcp listener", KindVirtualNode, func(r *Resource) {
			nodeListener(r).PortMapping.Protocol = "tcp"
			listenerExt(r).RateLimit = goodBucket()
		}, nil},
		{"rate limit tokens", KindRoute, func(r *Resource) {
			routeExt(r).RateLimit = &RateLimit{MaxTokens: 0, TokensPerFill: -1, FillInterval: dur("s", 1)}
		}, []string{rl + ".maxTokens: must be between 1 and 4294967295", rl + ".tokensPerFill: must be between 1 and 4294967295"}},
		{"rate limit tokens too many", KindRoute, func(r *Resource) {
			routeExt(r).RateLimit = &RateLimit{MaxTokens: 1 << 32, FillInterval: dur("s", 1)}
		}, []string{rl + ".maxTokens: must be between 1 and 4294967295"}},
		{"rate limit interval required", KindRoute, func(r *Resource) { routeExt(r).RateLimit = &RateLimit{MaxTokens: 1} },
			[]string{rl + ".fillInterval: is required"}},
		{"rate limit interval too short", KindRoute, func(r *Resource) { routeExt(r).RateLimit = &RateLimit{MaxTokens: 1, FillInterval: dur("ms", 49)} },
			[]string{rl + ".fillInterval.value: must be between 50 ms and 86400 s"}},
		{"rate limit interval value", KindRoute, func(r *Resource) {
			routeExt(r).RateLimit = &RateLimit{MaxTokens: 1, FillInterval: &Duration{Unit: "s"}}
		}, []string{rl + ".fillInterval.value: is required"}},
		{"rate limit on a node listener", KindVirtualNode, func(r *Resource) { listenerExt(r).RateLimit = &RateLimit{MaxTokens: 1, FillInterval: dur("s", 86401)} },
			[]string{"spec.listeners[0].meshlens.rateLimit.fillInterval.value: must be between 50 ms and 86400 s"}},
		{"rate limit on a gateway listener", KindVirtualGateway, func(r *Resource) { gwListenerExt(r).RateLimit = &RateLimit{FillInterval: dur("s", 1)} },
			[]string{"spec.listeners[0].meshlens.rateLimit.maxTokens: must be between 1 and 4294967295"}},
		{"rate limit on a gateway route", KindGatewayRoute, func(r *Resource) { gwRouteExt(r).RateLimit = &RateLimit{MaxTokens: 1} },
			[]string{"spec.httpRoute.meshlens.rateLimit.fillInterval: is required"}},

		// CORS.
		{"cors valid", KindVirtualGateway, func(r *Resource) {
			gwListenerExt(r).CORS = &CORSPolicy{
				AllowOrigins:  []OriginMatch{{Exact: "*"}, {Prefix: "https://"}, {Regex: `https://.*\.example\.com`}},
				AllowMethods:  []string{"GET", "POST"},
				AllowHeaders:  []string{"content-type", "x-grpc-web", "*"},
				ExposeHeaders: []string{"grpc-status"},
				MaxAge:        dur("ms", 600000),
			}
		}, nil},
		{"cors origins required", KindVirtualGateway, func(r *Resource) { gwListenerExt(r).CORS = &CORSPolicy{} },
			[]string{gc + ".allowOrigins: must have between 1 and 50 origins"}},
		{"cors origin union", KindVirtualGateway, func(r *Resource) {
			gwListenerExt(r).CORS = &CORSPolicy{AllowOrigins: []OriginMatch{{Exact: "a"}, {Exact: "a", Prefix: "b"}, {}}}
		}, []string{gc + ".allowOrigins[1]: exactly one of exact, prefix, regex must be set", gc + ".allowOrigins[2]: exactly one of exact, prefix, regex must be set"}},
		{"cors origin regex", KindVirtualGateway, func(r *Resource) {
			gwListenerExt(r).CORS = &CORSPolicy{AllowOrigins: []OriginMatch{{Regex: "https://(a"}}}
		}, []string{gc + ".allowOrigins[0].regex: must be a valid regular expression: error parsing regexp: missing closing ): `https://(a`"}},
		{"cors origin regex not RE2", KindVirtualGateway, func(r *Resource) {
			gwListenerExt(r).CORS = &CORSPolicy{AllowOrigins: []OriginMatch{{Regex: `(a)\1`}}}
		}, []string{gc + ".allowOrigins[0].regex: must be a valid regular expression: error parsing regexp: invalid escape sequence: `\\1`"}},
		{"cors methods", KindVirtualGateway, func(r *Resource) {
			c := goodCORS()
			c.AllowMethods = []string{"GET", "", "PO ST"}
			gwListenerExt(r).CORS = c
		}, []string{gc + ".allowMethods[1]: must not be empty", gc + `.allowMethods[2]: must be an HTTP token (letters, digits and !#$%&'*+-.^_` + "`|~), not \"PO ST\""}},
		{"cors headers", KindVirtualGateway, func(r *Resource) {
			c := goodCORS()
			c.AllowHeaders = []string{"x-a,x-b"}
			c.ExposeHeaders = []string{strings.Repeat("h", 257)}
			gwListenerExt(r).CORS = c
		}, []string{gc + `.allowHeaders[0]: must be an HTTP token (letters, digits and !#$%&'*+-.^_` + "`|~), not \"x-a,x-b\"", gc + ".exposeHeaders[0]: must be at most 256 characters"}},
		{"cors too many headers", KindVirtualGateway, func(r *Resource) {
			c := goodCORS()
			c.AllowHeaders = make([]string, 51)
			for i := range c.AllowHeaders {
				c.AllowHeaders[i] = "h"
			}
			gwListenerExt(r).CORS = c
		}, []string{gc + ".allowHeaders: must have at most 50 entries"}},
		{"cors max age", KindVirtualGateway, func(r *Resource) {
			c := goodCORS()
			c.MaxAge = dur("s", 86401)
			gwListenerExt(r).CORS = c
		}, []string{gc + ".maxAge.value: must be between 0 s and 86400 s"}},
		{"cors max age whole seconds", KindVirtualGateway, func(r *Resource) {
			c := goodCORS()
			c.MaxAge = dur("ms", 1500)
			gwListenerExt(r).CORS = c
		}, []string{gc + ".maxAge: must be whole seconds (access-control-max-age counts seconds)"}},
		{"cors on a gateway route", KindGatewayRoute, func(r *Resource) { gwRouteExt(r).CORS = &CORSPolicy{} },
			[]string{"spec.httpRoute.meshlens.cors.allowOrigins: must have between 1 and 50 origins"}},
		{"cors on a grpc gateway route", KindGatewayRoute, func(r *Resource) {
			r.GatewayRouteSpec.GRPCRoute = &GRPCGatewayRoute{
				Match:    &GRPCGatewayRouteMatch{ServiceName: "s"},
				Action:   &GRPCGatewayRouteAction{Target: &GatewayRouteTarget{VirtualService: &GatewayRouteVirtualService{VirtualServiceName: "svc"}}},
				Meshlens: &GatewayRouteMeshlens{CORS: &CORSPolicy{AllowOrigins: []OriginMatch{{}}}},
			}
			r.GatewayRouteSpec.HTTPRoute = nil
		}, []string{"spec.grpcRoute.meshlens.cors.allowOrigins[0]: exactly one of exact, prefix, regex must be set"}},

		// gRPC-Web.
		{"grpc-web", KindVirtualGateway, func(r *Resource) { gwListenerExt(r).GRPCWeb = &GRPCWeb{Enabled: true} }, nil},

		// Tracing.
		{"tracing builtin by default", KindMesh, func(r *Resource) { meshTracing(r).SamplingPercentage = ptr(100.0) }, nil},
		{"tracing otlp", KindMesh, func(r *Resource) {
			*meshTracing(r) = Tracing{Provider: "otlp", Endpoint: "otel-collector.observability:4317"}
		}, nil},
		{"tracing zipkin by ip", KindMesh, func(r *Resource) { *meshTracing(r) = Tracing{Provider: "zipkin", Endpoint: "10.0.0.9:9411"} }, nil},
		{"tracing xray with defaults", KindMesh, func(r *Resource) {
			*meshTracing(r) = Tracing{Provider: "xray", SamplingRuleManifest: "/etc/xray/rules.json"}
		}, nil},
		{"tracing unknown provider", KindMesh, func(r *Resource) { meshTracing(r).Provider = "jaeger" },
			[]string{mt + ".provider: must be one of builtin, otlp, zipkin, xray, none"}},
		{"tracing otlp needs an endpoint", KindMesh, func(r *Resource) { meshTracing(r).Provider = "otlp" },
			[]string{mt + ".endpoint: is required for provider otlp"}},
		{"tracing builtin takes no endpoint", KindMesh, func(r *Resource) { meshTracing(r).Endpoint = "a:1" },
			[]string{mt + ".endpoint: must be empty for provider builtin"}},
		{"tracing endpoint without port", KindMesh, func(r *Resource) { *meshTracing(r) = Tracing{Provider: "zipkin", Endpoint: "zipkin"} },
			[]string{mt + `.endpoint: must be host:port, not "zipkin"`}},
		{"tracing endpoint port", KindMesh, func(r *Resource) { *meshTracing(r) = Tracing{Provider: "otlp", Endpoint: "c:70000"} },
			[]string{mt + `.endpoint: must be host:port with a port 1-65535, not "c:70000"`}},
		{"tracing endpoint host", KindMesh, func(r *Resource) { *meshTracing(r) = Tracing{Provider: "otlp", Endpoint: "a b:4317"} },
			[]string{mt + `.endpoint: host must contain only letters, digits, hyphens, underscores and dots, not ' '`}},
		{"tracing xray endpoint is an address", KindMesh, func(r *Resource) { *meshTracing(r) = Tracing{Provider: "xray", Endpoint: "xray-daemon:2000"} },
			[]string{mt + `.endpoint: must be an IP address and port for provider xray (the X-Ray daemon's UDP address), not "xray-daemon:2000"`}},
		{"tracing xray endpoint", KindMesh, func(r *Resource) { *meshTracing(r) = Tracing{Provider: "xray", Endpoint: "[::1]:2000"} }, nil},
		{"tracing sampling", KindMesh, func(r *Resource) { meshTracing(r).SamplingPercentage = ptr(101.0) },
			[]string{mt + ".samplingPercentage: must be between 0 and 100"}},
		{"tracing manifest only for xray", KindMesh, func(r *Resource) { meshTracing(r).SamplingRuleManifest = "/x" },
			[]string{mt + ".samplingRuleManifest: applies only to provider xray"}},
		{"tracing custom tags", KindMesh, func(r *Resource) {
			meshTracing(r).CustomTags = []TracingTag{
				{Tag: "team", Literal: "blue"},
				{Tag: "team", RequestHeader: &TracingHeaderTag{Name: "x tenant"}},
				{Literal: "x", RequestHeader: &TracingHeaderTag{Name: "a"}},
			}
		}, []string{
			mt + `.customTags[1].tag: duplicate tag "team" (also customTags[0])`,
			mt + `.customTags[1].requestHeader.name: must be an HTTP header name of at most 256 characters, not "x tenant"`,
			mt + ".customTags[2].tag: is required",
			mt + ".customTags[2]: exactly one of literal, requestHeader must be set",
		}},
		{"route tracing", KindRoute, func(r *Resource) { routeExt(r).Tracing = &TracingOverride{SamplingPercentage: ptr(0.5)} }, nil},
		{"route tracing sampling", KindRoute, func(r *Resource) { routeExt(r).Tracing = &TracingOverride{SamplingPercentage: ptr(-1.0)} },
			[]string{"spec.httpRoute.meshlens.tracing.samplingPercentage: must be between 0 and 100"}},
		{"node tracing", KindVirtualNode, func(r *Resource) {
			r.VirtualNodeSpec.Meshlens = &NodeMeshlens{Tracing: &TracingOverride{SamplingPercentage: ptr(25.0)}}
		}, nil},
		{"node tracing sampling", KindVirtualNode, func(r *Resource) {
			r.VirtualNodeSpec.Meshlens = &NodeMeshlens{Tracing: &TracingOverride{SamplingPercentage: ptr(0.00001)}}
		}, []string{"spec.meshlens.tracing.samplingPercentage: must have at most 4 decimal places"}},
		{"gateway tracing sampling", KindVirtualGateway, func(r *Resource) {
			r.VirtualGatewaySpec.Meshlens = &NodeMeshlens{Tracing: &TracingOverride{SamplingPercentage: ptr(200.0)}}
		}, []string{"spec.meshlens.tracing.samplingPercentage: must be between 0 and 100"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := base(t, tc.kind)
			tc.mutate(r)
			err := r.Validate()
			var got []string
			if err != nil {
				var fes FieldErrors
				if !errors.As(err, &fes) {
					t.Fatalf("Validate returned %T, want FieldErrors", err)
				}
				for _, fe := range fes {
					got = append(got, fe.Error())
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

// TestDecodeMeshlensErrors: a mistake inside the extension is reported
// with its path in every input form, and an extension where it does not
// apply is an unknown field, as any other.
func TestDecodeMeshlensErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		input string
		want  string
	}{
		{"unknown field in meshlens",
			"kind: Route\nmesh: demo\nvirtualRouter: r\nname: x\nspec:\n  httpRoute:\n    meshlens: {faults: {}}\n",
			`document 1 (Route demo/r/x): spec.httpRoute.meshlens: unknown field "faults"`},
		{"cors is not a route policy",
			"kind: Route\nmesh: demo\nvirtualRouter: r\nname: x\nspec:\n  httpRoute:\n    meshlens: {cors: {}}\n",
			`document 1 (Route demo/r/x): spec.httpRoute.meshlens: unknown field "cors"`},
		{"no meshlens on a tcp route",
			"kind: Route\nmesh: demo\nvirtualRouter: r\nname: x\nspec:\n  tcpRoute:\n    meshlens: {}\n",
			`document 1 (Route demo/r/x): spec.tcpRoute: unknown field "meshlens"`},
		{"percentage type",
			"kind: Route\nmesh: demo\nvirtualRouter: r\nname: x\nspec:\n  httpRoute:\n    meshlens: {fault: {abort: {httpStatus: 503, percentage: \"5%\"}}}\n",
			`document 1 (Route demo/r/x): spec.httpRoute.meshlens.fault.abort.percentage: must be a number, not string`},
		{"grpcWeb on a node listener",
			"kind: VirtualNode\nmesh: demo\nname: node\nspec:\n  listeners:\n    - portMapping: {port: 80, protocol: http}\n      meshlens: {grpcWeb: {enabled: true}}\n",
			`document 1 (VirtualNode demo/node): spec.listeners[0].meshlens: unknown field "grpcWeb"`},
		{"App Mesh API input",
			`{"meshName": "demo", "virtualRouterName": "r", "routeName": "x", "spec": {"httpRoute": {"meshlens": {"rateLimit": {"maxTokens": "ten"}}}}}`,
			`document 1 (Route demo/r/x): spec.httpRoute.meshlens.rateLimit.maxTokens: must be an integer, not string`},
		{"CloudFormation",
			`{"Type": "AWS::AppMesh::VirtualGateway", "Properties": {"MeshName": "demo", "VirtualGatewayName": "g", "Spec": {"Listeners": [{"PortMapping": {"Port": 80, "Protocol": "http"}, "Meshlens": {"GrpcWeb": {"Enabled": "yes"}}}]}}}`,
			`document 1 (VirtualGateway demo/g): spec.listeners[0].meshlens.grpcWeb.enabled: must be a boolean, not string`},
		{"mesh tracing unknown field",
			"kind: Mesh\nname: demo\nspec:\n  meshlens: {tracing: {sampling: 5}}\n",
			`document 1 (Mesh demo): spec.meshlens.tracing: unknown field "sampling"`},
		{"mesh tracing in App Mesh API input",
			`{"meshName": "demo", "spec": {"meshlens": {"tracing": {"samplingPercentage": "all"}}}}`,
			`document 1 (Mesh demo): spec.meshlens.tracing.samplingPercentage: must be a number, not string`},
		{"mesh tracing in CloudFormation",
			`{"Type": "AWS::AppMesh::Mesh", "Properties": {"MeshName": "demo", "Spec": {"Meshlens": {"Tracing": {"CustomTags": [{"Tag": 5}]}}}}}`,
			`document 1 (Mesh demo): spec.meshlens.tracing.customTags[0].tag: must be a string, not number`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode([]byte(tc.input))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Decode error:\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

// TestFilterDocsExamples decodes and validates the YAML of
// docs/filters/*.md: every resource, and every fragment that starts with a
// policy (fault:, rateLimit:, cors:, grpcWeb:) placed where it applies.
func TestFilterDocsExamples(t *testing.T) {
	t.Parallel()
	pages, err := filepath.Glob("../../../docs/filters/*.md")
	if err != nil || len(pages) != 4 {
		t.Fatalf("want the four pages under docs/filters, found %v (%v)", pages, err)
	}
	// Where a fragment goes: a Route's or a gateway listener's extension,
	// and the indentation of its members there.
	const route = "kind: Route\nmesh: demo\nvirtualRouter: router\nname: route\nspec:\n  httpRoute:\n    match: {prefix: /}\n" +
		"    action:\n      weightedTargets: [{virtualNode: node, weight: 1}]\n    meshlens:\n"
	const gateway = "kind: VirtualGateway\nmesh: demo\nname: gateway\nspec:\n  listeners:\n    - portMapping: {port: 8080, protocol: http}\n      meshlens:\n"
	type host struct{ doc, indent string }
	hosts := map[string]host{
		"fault":     {route, "      "},
		"rateLimit": {route, "      "},
		"cors":      {gateway, "        "},
		"grpcWeb":   {gateway, "        "},
	}
	resources, fragments := 0, 0
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range strings.Split(string(data), "```yaml\n")[1:] {
			text, _, _ := strings.Cut(b, "```")
			first, _, _ := strings.Cut(text, "\n")
			policy, isFragment := strings.CutSuffix(first, ":")
			switch host, ok := hosts[policy]; {
			case strings.HasPrefix(text, "kind:"):
				resources++
			case isFragment && ok:
				fragments++
				text = host.doc + host.indent + strings.ReplaceAll(strings.TrimRight(text, "\n"), "\n", "\n"+host.indent) + "\n"
			default:
				continue // xDS
			}
			if _, err := DecodeAndValidate([]byte(text)); err != nil {
				t.Errorf("%s: %v\n%s", page, err, text)
			}
		}
	}
	// The sketch of docs/resources.md, a Route's spec.
	data, err := os.ReadFile("../../../docs/resources.md")
	if err != nil {
		t.Fatal(err)
	}
	const sketch = "```yaml\n# in a Route's spec\n"
	_, rest, ok := strings.Cut(string(data), sketch)
	if !ok {
		t.Fatalf("docs/resources.md has no block starting %q", sketch)
	}
	spec, _, _ := strings.Cut(rest, "```")
	doc := "kind: Route\nmesh: demo\nvirtualRouter: router\nname: route\nspec:\n  " + strings.ReplaceAll(strings.TrimRight(spec, "\n"), "\n", "\n  ") + "\n"
	if rs, err := DecodeAndValidate([]byte(doc)); err != nil || rs[0].RouteSpec.HTTPRoute.Meshlens == nil {
		t.Errorf("docs/resources.md: %v\n%s", err, doc)
	}
	if resources < 6 || fragments != 4 {
		t.Errorf("checked %d resources and %d fragments, want every example and the four field sketches", resources, fragments)
	}
}

// TestDecodeMeshTracing: the Mesh's extension reads the same in the
// meshlens form and in CloudFormation.
func TestDecodeMeshTracing(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"kind: Mesh\nname: demo\nspec:\n  meshlens:\n    tracing: {provider: zipkin, endpoint: \"zipkin:9411\", samplingPercentage: 2.5}\n",
		`{"Type": "AWS::AppMesh::Mesh", "Properties": {"MeshName": "demo", "Spec": {"Meshlens": {"Tracing": {"Provider": "zipkin", "Endpoint": "zipkin:9411", "SamplingPercentage": 2.5}}}}}`,
	} {
		rs, err := Decode([]byte(in))
		if err != nil {
			t.Fatalf("Decode(%s): %v", in, err)
		}
		tr := rs[0].MeshSpec.Meshlens.Tracing
		if tr.Provider != "zipkin" || tr.Endpoint != "zipkin:9411" || *tr.SamplingPercentage != 2.5 {
			t.Fatalf("Decode(%s) = %+v", in, tr)
		}
		if err := rs[0].Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
}
