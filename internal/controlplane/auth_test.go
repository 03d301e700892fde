package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/auth"
	"github.com/meshlens/meshlens/internal/etcdtest"
	"github.com/meshlens/meshlens/internal/nodeid"
)

func TestRequiredAccess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method, path string
		want         access
	}{
		{"GET", "/healthz", access{open: true}},
		{"GET", "/ui/index.html", access{open: true}},
		{"POST", "/healthz", access{role: auth.RoleWrite}},
		{"GET", "/v1/meshes", access{role: auth.RoleRead}},
		{"HEAD", "/metrics", access{role: auth.RoleRead}},
		{"GET", "/v1/tap", access{role: auth.RoleRead}},
		{"POST", "/v1/console/validate", access{role: auth.RoleRead}},
		{"POST", "/v1/apply", access{role: auth.RoleWrite}},
		{"PUT", "/v1/meshes/demo", access{role: auth.RoleWrite}},
		{"DELETE", "/v1/meshes/demo/virtualNodes/greeter", access{role: auth.RoleWrite}},
		{"POST", "/v1/traces", access{role: auth.RoleWrite}},
		{"GET", "/v1/tokens", access{role: auth.RoleAdmin}},
		{"DELETE", "/v1/tokens/0123456789ab", access{role: auth.RoleAdmin}},
		{"PUT", "/v1/meshes/demo/virtualNodes/greeter/instances/i-1", access{role: auth.RoleWrite, mesh: "demo", node: "greeter"}},
		{"DELETE", "/v1/meshes/demo/virtualNodes/greeter/instances/i-1", access{role: auth.RoleWrite, mesh: "demo", node: "greeter"}},
		{"GET", "/v1/meshes/demo/virtualNodes/greeter/instances", access{role: auth.RoleRead}},
		{"PUT", "/v1/meshes/demo/virtualGateways/gw/instances/i-1", access{role: auth.RoleWrite}},
	} {
		if got := requiredAccess(httptest.NewRequest(tc.method, tc.path, nil)); got != tc.want {
			t.Errorf("%s %s: %+v, want %+v", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestCheckBinds(t *testing.T) {
	t.Parallel()
	store, err := auth.Open(filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"loopback", Config{APIAddr: "127.0.0.1:7070", XDSAddr: "[::1]:15010"}, ""},
		{"localhost", Config{APIAddr: "localhost:7070", XDSAddr: "127.0.0.2:0"}, ""},
		{"wildcard api", Config{APIAddr: "0.0.0.0:7070", XDSAddr: "127.0.0.1:0"}, "--api-addr 0.0.0.0:7070: not a loopback address"},
		{"empty host xds", Config{APIAddr: "127.0.0.1:0", XDSAddr: ":15010"}, "--xds-addr :15010: not a loopback address"},
		{"host ip", Config{APIAddr: "10.0.0.5:7070", XDSAddr: "127.0.0.1:0"}, "--api-addr 10.0.0.5:7070"},
		{"name", Config{APIAddr: "cp.internal:7070", XDSAddr: "127.0.0.1:0"}, "--api-addr cp.internal:7070"},
		{"with auth", Config{APIAddr: "0.0.0.0:7070", XDSAddr: "0.0.0.0:15010", Auth: store}, ""},
		{"insecure", Config{APIAddr: "0.0.0.0:7070", XDSAddr: "0.0.0.0:15010", InsecureAllowUnauthenticated: true}, ""},
	} {
		err := checkBinds(tc.cfg)
		if (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

// TestGRPCAuth: every call on the xDS address needs a valid token; xDS
// streams are bound to their node later, the metrics service and OTLP
// span exports take a bootstrap token or write, not read.
func TestGRPCAuth(t *testing.T) {
	t.Parallel()
	store, err := auth.Open(filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	read, _, _ := store.Create(auth.Spec{Role: auth.RoleRead})
	node, _, _ := store.Create(auth.Spec{Mesh: "demo", Node: "greeter"})
	s := &Server{cfg: Config{Auth: store}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), authMetrics: newAuthMetrics(prometheus.NewRegistry())}
	const ads = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	const metricsSvc = "/envoy.service.metrics.v3.MetricsService/StreamMetrics"
	const sds = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"
	for _, tc := range []struct {
		name, method, token string
		want                codes.Code
	}{
		{"ads without token", ads, "", codes.Unauthenticated},
		{"ads unknown token", ads, "mlt_000000000000_" + strings.Repeat("A", 43), codes.Unauthenticated},
		{"ads node token", ads, node, codes.OK},
		{"ads read token (refused when bound)", ads, read, codes.OK},
		{"sds without token", sds, "", codes.Unauthenticated},
		{"sds read token (refused when bound)", sds, read, codes.OK},
		{"metrics node token", metricsSvc, node, codes.OK},
		{"metrics read token", metricsSvc, read, codes.PermissionDenied},
		{"metrics without token", metricsSvc, "", codes.Unauthenticated},
		{"otlp without token", otlpExport, "", codes.Unauthenticated},
		{"otlp node token", otlpExport, node, codes.OK},
		{"otlp read token", otlpExport, read, codes.PermissionDenied},
	} {
		ctx := context.Background()
		if tc.token != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+tc.token))
		}
		ctx, err := s.grpcAuth(ctx, tc.method)
		if status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		if err != nil || tc.method != ads && tc.method != sds {
			continue
		}
		greeter := s.authorizeNode(ctx, nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "greeter"})
		other := s.authorizeNode(ctx, nodeid.ID{Mesh: "demo", Kind: nodeid.VirtualNode, Name: "other"})
		if tc.token == node && (greeter != nil || status.Code(other) != codes.PermissionDenied) {
			t.Errorf("%s: greeter %v, other %v", tc.name, greeter, other)
		}
		if tc.token == read && status.Code(greeter) != codes.PermissionDenied {
			t.Errorf("%s: a read token was given a node's stream: %v", tc.name, greeter)
		}
	}
}

// TestReplicasForwardTheCallersToken: with tokens, a replica listing the
// proxies of every replica asks the others with its caller's token, so
// they answer instead of refusing it.
func TestReplicasForwardTheCallersToken(t *testing.T) {
	c := etcdtest.Start(t, 1)
	tokens := tokenStore(t)
	read := newToken(t, tokens, auth.Spec{Role: auth.RoleRead})
	withAuth := func(cfg *Config) { cfg.Auth = tokens }
	a := startReplica(t, c, "a", withAuth)
	b := startReplica(t, c, "b", withAuth)
	a.api.Token, b.api.Token = read, read
	eventually(t, 10*time.Second, func() string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+b.s.APIAddr()+"/v1/proxies", nil)
		req.Header.Set("Authorization", "Bearer "+read)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		var list restv1.ProxyList
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			return err.Error()
		}
		peers, _ := b.s.cluster.peers(context.Background())
		if resp.StatusCode != http.StatusOK || len(peers) != 2 || len(list.UnreachableReplicas) != 0 {
			return fmt.Sprintf("status %d, %d peers, unreachable %v", resp.StatusCode, len(peers), list.UnreachableReplicas)
		}
		return ""
	})
}

// TestAuthorizeMetricsNode: a proxy's token reports its own node's
// metrics only; a write token any node's.
func TestAuthorizeMetricsNode(t *testing.T) {
	t.Parallel()
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), authMetrics: newAuthMetrics(prometheus.NewRegistry())}
	for _, tc := range []struct {
		name string
		p    *auth.Principal
		node string
		want codes.Code
	}{
		{"own node", &auth.Principal{Mesh: "demo", Node: "greeter"}, "mesh/demo/virtualNode/greeter", codes.OK},
		{"other node", &auth.Principal{Mesh: "demo", Node: "greeter"}, "mesh/demo/virtualNode/other", codes.PermissionDenied},
		{"mesh token", &auth.Principal{Mesh: "demo"}, "mesh/demo/virtualGateway/gw", codes.OK},
		{"not a node id", &auth.Principal{Mesh: "demo"}, "greeter", codes.PermissionDenied},
		{"write", &auth.Principal{Role: auth.RoleWrite}, "anything", codes.OK},
		{"unauthenticated", nil, "mesh/demo/virtualNode/greeter", codes.Unauthenticated},
	} {
		ctx := context.Background()
		if tc.p != nil {
			ctx = withPrincipal(ctx, *tc.p)
		}
		if err := s.authorizeMetricsNode(ctx, tc.node); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestAuthorizeSpans: a bootstrap token exports the spans of the data
// planes it is bound to (service.name <mesh>/<name>), a mesh token those
// of its mesh, a write token any; every other service is refused.
func TestAuthorizeSpans(t *testing.T) {
	t.Parallel()
	store, err := auth.Open(filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	node, _, _ := store.Create(auth.Spec{Mesh: "demo", Node: "greeter"})
	mesh, _, _ := store.Create(auth.Spec{Mesh: "demo"})
	write, _, _ := store.Create(auth.Spec{Role: auth.RoleWrite})
	s := &Server{cfg: Config{Auth: store}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), authMetrics: newAuthMetrics(prometheus.NewRegistry())}
	for _, tc := range []struct {
		name, token string
		services    []string
		want        codes.Code
	}{
		{"node, its own", node, []string{"demo/greeter", "demo/greeter"}, codes.OK},
		{"node, another node", node, []string{"demo/greeter", "demo/name"}, codes.PermissionDenied},
		{"node, another mesh", node, []string{"shop/greeter"}, codes.PermissionDenied},
		{"node, no mesh in the name", node, []string{"greeter"}, codes.PermissionDenied},
		{"node, no name", node, []string{""}, codes.PermissionDenied},
		{"mesh, any node of it", mesh, []string{"demo/greeter", "demo/ingress"}, codes.OK},
		{"mesh, another mesh", mesh, []string{"shop/web"}, codes.PermissionDenied},
		{"write, anything", write, []string{"web-ui", ""}, codes.OK},
	} {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tc.token))
		ctx, err := s.grpcAuth(ctx, otlpExport)
		if err != nil {
			t.Fatalf("%s: grpcAuth: %v", tc.name, err)
		}
		if got := status.Code(s.authorizeSpans(ctx, tc.services)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
