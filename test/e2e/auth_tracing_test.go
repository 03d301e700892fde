package e2e

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const authTracingMesh = `
kind: Mesh
name: at
spec:
  meshlens:
    tracing:
      samplingPercentage: 100
---
kind: VirtualNode
mesh: at
name: web
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: web.at.local}}
`

// TestAuthBuiltinTracing: with tokens on, the control plane's OTLP
// receiver refuses spans without a token (anyone reaching the xDS address
// could otherwise write into the trace store) and a node's token
// exporting another service's spans, and a sidecar's spans to the builtin
// provider carry its token: they reach the trace store.
func TestAuthBuiltinTracing(t *testing.T) {
	t.Parallel()
	s, admin := startAuthServer(t)
	adminEnv := []string{"MESHLENS_SERVER=" + s.URL(), "MESHLENS_TOKEN=" + admin}
	if r := runCLI(t, adminEnv, authTracingMesh, "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("apply: %s", r.stderr)
	}
	webTok := newToken(t, adminEnv, "--node", "at/web")
	readTok := newToken(t, adminEnv, "--role", "read")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc, err := grpc.NewClient(s.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	forged := &tracepb.Span{TraceId: bytes.Repeat([]byte{0x7f}, 16), SpanId: bytes.Repeat([]byte{1}, 8), Name: "forged",
		StartTimeUnixNano: uint64(time.Now().UnixNano()), EndTimeUnixNano: uint64(time.Now().UnixNano()) + 1e6}
	export := func(token, service string) error {
		c := ctx
		if token != "" {
			c = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		_, err := collectorpb.NewTraceServiceClient(cc).Export(c, otlpSpans(service, forged))
		return err
	}
	if err := export("", "at/web"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("OTLP export without a token: %v, want Unauthenticated", err)
	}
	if err := export(readTok, "at/web"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("OTLP export with a read token: %v, want PermissionDenied", err)
	}
	// The web node's token exports web's spans only.
	if err := export(webTok, "at/intruder"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("OTLP export with web's token of another service's spans: %v, want PermissionDenied", err)
	}
	if code, _, body := apiCall(t, s, http.MethodGet, "/api/traces/7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f", readTok, ""); code != http.StatusNotFound {
		t.Fatalf("the refused span was stored: %d %s", code, body)
	}

	app := startEchoApp(t, "web")
	web := startProxy(t, s, "mesh/at/virtualNode/web", true, "--token", webTok,
		"--ingress-addr", "127.0.0.1:0", "--egress-addr", "none", "--app", "8080="+app.addr, "--register=false")
	ingress := web.listenerAddr(t, "lds_ingress_*")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	sendTraced(t, ingress, traceID)
	eventually(t, 30*time.Second, "the sidecar's span in the trace store", func() error {
		code, _, body := apiCall(t, s, http.MethodGet, "/api/traces/"+traceID, readTok, "")
		if code != http.StatusOK || !strings.Contains(body, `"at/web"`) {
			return errStatus(code)
		}
		return nil
	})
	if strings.Contains(web.logs.String(), "Unauthenticated") {
		t.Fatalf("the sidecar's exports were refused:\n%s", web.logs.String())
	}
}

// sendTraced sends GET /traced to addr (a sidecar's inbound listener) as
// the sampled child of a W3C trace, and fails unless it is answered 200.
func sendTraced(t testing.TB, addr, traceID string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/traced", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /traced through the sidecar: %d", resp.StatusCode)
	}
}
