package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/auth"
	"github.com/meshlens/meshlens/internal/consoleui"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// Authentication. With Config.Auth set, every API request but GET /healthz
// and the console's static files needs a bearer token whose role allows
// it (GET: read; writes: write; /v1/tokens: admin; an instance's
// registration: its node's bootstrap token or write), and every gRPC call
// on the xDS address needs a token: an xDS stream one bound to its node
// (or an admin's), the metrics service and OTLP span exports a bootstrap
// token or write (proxies send theirs with the spans of the builtin
// tracing provider), or a mesh CA client certificate. Without Config.Auth
// nothing is checked, and New refuses addresses that are not loopback
// (see checkBinds).

// Auth failure reasons, the label of the failure counters.
const (
	reasonMissing   = "missing"
	reasonMalformed = "malformed"
	reasonInvalid   = "invalid"
	reasonWrongNode = "wrong_node"
	reasonRole      = "insufficient_role"
)

func failureReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrMissing):
		return reasonMissing
	case errors.Is(err, auth.ErrMalformed):
		return reasonMalformed
	default:
		return reasonInvalid
	}
}

type authMetrics struct {
	xds, api *prometheus.CounterVec
}

func newAuthMetrics(reg *prometheus.Registry) authMetrics {
	m := authMetrics{
		xds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlens_xds_auth_failures_total", Help: "gRPC calls on the xDS address refused for their token, by reason (missing, malformed, invalid, wrong_node, insufficient_role).",
		}, []string{"reason"}),
		api: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlens_api_auth_failures_total", Help: "REST API requests refused for their token, by reason (missing, malformed, invalid, wrong_node, insufficient_role).",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonMissing, reasonMalformed, reasonInvalid, reasonWrongNode, reasonRole} {
		m.xds.WithLabelValues(r)
		m.api.WithLabelValues(r)
	}
	reg.MustRegister(m.xds, m.api)
	return m
}

// isLoopback reports whether addr (host:port) binds only loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkBinds refuses addresses other hosts can reach when nothing would
// authenticate who connects.
func checkBinds(cfg Config) error {
	if cfg.Auth != nil || cfg.InsecureAllowUnauthenticated {
		return nil
	}
	for _, b := range []struct{ flag, addr string }{{"--api-addr", cfg.APIAddr}, {"--xds-addr", cfg.XDSAddr}} {
		if !isLoopback(b.addr) {
			return fmt.Errorf("%s %s: not a loopback address, and no authentication is configured: "+
				"give --auth-tokens FILE (see docs/auth.md), or --insecure-allow-unauthenticated to let anyone who reaches it read and change the mesh",
				b.flag, b.addr)
		}
	}
	return nil
}

// ---- REST API ----

// access is what a request needs.
type access struct {
	open       bool
	role       auth.Role
	mesh, node string // an instance registration: this node's token will do
}

// requiredAccess classifies a request by its method and path.
func requiredAccess(r *http.Request) access {
	p := r.URL.Path
	switch {
	case p == "/healthz" && r.Method == http.MethodGet:
		return access{open: true}
	case strings.HasPrefix(p, consoleui.Prefix) && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		return access{open: true} // static files; the data behind them is not
	case p == "/v1/tokens" || strings.HasPrefix(p, "/v1/tokens/"):
		return access{role: auth.RoleAdmin}
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return access{role: auth.RoleRead}
	case r.Method == http.MethodPost && p == "/v1/console/validate":
		return access{role: auth.RoleRead} // checks documents, writes nothing
	}
	// PUT and DELETE /v1/meshes/{mesh}/virtualNodes/{node}/instances/{id}
	seg := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(seg) == 7 && seg[0] == "v1" && seg[1] == "meshes" && seg[3] == "virtualNodes" && seg[5] == "instances" &&
		(r.Method == http.MethodPut || r.Method == http.MethodDelete) {
		return access{role: auth.RoleWrite, mesh: seg[2], node: seg[4]}
	}
	return access{role: auth.RoleWrite}
}

// authenticate wraps the API with the token check. Without Config.Auth it
// is next.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cfg.Auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := requiredAccess(r)
		if need.open {
			next.ServeHTTP(w, r)
			return
		}
		p, err := s.principal(r.Header.Get("Authorization"))
		if err != nil {
			reason := failureReason(err)
			s.authMetrics.api.WithLabelValues(reason).Inc()
			s.log.Warn("api: refused a request without a valid token", "method", r.Method, "path", r.URL.Path,
				"remote", r.RemoteAddr, "reason", reason, "error", err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="meshlens"`)
			msg := "authentication required: send Authorization: Bearer <token> (meshlens --token, or MESHLENS_TOKEN; see docs/auth.md)"
			if !errors.Is(err, auth.ErrMissing) {
				msg = "authentication failed: " + err.Error()
			}
			writeError(w, &restv1.Error{Status: http.StatusUnauthorized, Code: restv1.CodeUnauthorized, Message: msg})
			return
		}
		if p.HasRole(need.role) || need.node != "" && p.AllowsKindNode(string(nodeid.VirtualNode), need.mesh, need.node) {
			next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
			return
		}
		reason, msg := reasonRole, fmt.Sprintf("token %s may not %s %s: it needs role %s", p, r.Method, r.URL.Path, need.role)
		if need.node != "" {
			reason = reasonWrongNode
			msg += fmt.Sprintf(" or a bootstrap token of node %s/%s", need.mesh, need.node)
		}
		s.authMetrics.api.WithLabelValues(reason).Inc()
		s.log.Warn("api: refused a request its token does not allow", "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "token", p.String())
		writeError(w, &restv1.Error{Status: http.StatusForbidden, Code: restv1.CodeForbidden, Message: msg})
	})
}

// principal authenticates an Authorization value.
func (s *Server) principal(header string) (auth.Principal, error) {
	tok, err := auth.ParseAuthorization(header)
	if err != nil {
		return auth.Principal{}, err
	}
	return s.cfg.Auth.Authenticate(tok)
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p auth.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(auth.Principal)
	return p, ok
}

// ---- gRPC ----

// otlpExport is the OTLP trace service's method.
const otlpExport = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// xdsServicePrefixes are the services that serve configuration and
// secrets: their streams are bound to a node by Options.Authorize.
var xdsServicePrefixes = []string{
	"/envoy.service.discovery.v3.", "/envoy.service.listener.v3.", "/envoy.service.route.v3.",
	"/envoy.service.cluster.v3.", "/envoy.service.endpoint.v3.", "/envoy.service.secret.v3.",
}

// grpcAuth authenticates one gRPC call and returns its context with the
// principal.
func (s *Server) grpcAuth(ctx context.Context, method string) (context.Context, error) {
	// A client certificate from the mesh CA stands for its node.
	if p, ok := s.certPrincipal(ctx); ok {
		return withPrincipal(ctx, p), nil
	}
	var header string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			header = v[0]
		}
	}
	p, err := s.principal(header)
	if err != nil {
		reason := failureReason(err)
		s.authMetrics.xds.WithLabelValues(reason).Inc()
		s.log.Warn("xds: refused a call without a valid token", "method", method, "remote", peerAddr(ctx), "reason", reason, "error", err)
		return nil, status.Errorf(codes.Unauthenticated, "meshlens: %v: present a bootstrap token in the authorization metadata (Bearer <token>; docs/auth.md)", err)
	}
	for _, prefix := range xdsServicePrefixes {
		if strings.HasPrefix(method, prefix) {
			return withPrincipal(ctx, p), nil // bound to a node on the first request
		}
	}
	// The metrics service and OTLP exports: a proxy's own token, or a
	// tool that may write.
	if p.Role != "" && !p.HasRole(auth.RoleWrite) {
		s.authMetrics.xds.WithLabelValues(reasonRole).Inc()
		return nil, status.Errorf(codes.PermissionDenied, "meshlens: token %s may not call %s: it needs a bootstrap token or role write", p, method)
	}
	return withPrincipal(ctx, p), nil
}

// authorizeSpans is the OTLP receiver's check of an export's services
// (grpcAuth has authenticated the call): a bootstrap token or a mesh CA
// certificate exports the spans of the data planes it stands for, whose
// service.name is <mesh>/<node or gateway> (the builtin provider's); a
// token with role write (a tool) exports any.
func (s *Server) authorizeSpans(ctx context.Context, services []string) error {
	p, ok := principalFrom(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "meshlens: the export was not authenticated")
	}
	if p.HasRole(auth.RoleWrite) {
		return nil
	}
	for _, svc := range services {
		mesh, name, ok := strings.Cut(svc, "/")
		if !ok || !p.AllowsNode(mesh, name) {
			s.authMetrics.xds.WithLabelValues(reasonWrongNode).Inc()
			s.log.Warn("otlp: refused spans of another data plane", "principal", p.String(), "service", svc, "remote", peerAddr(ctx))
			return status.Errorf(codes.PermissionDenied, "meshlens: %s may not export spans of service %q: a bootstrap token exports those of the data planes it is bound to (service.name <mesh>/<name>)", p, svc)
		}
	}
	return nil
}

// authorizeNode is the xDS server's Authorize: the stream's token must be
// bound to the node it asks for.
func (s *Server) authorizeNode(ctx context.Context, id nodeid.ID) error {
	p, ok := principalFrom(ctx)
	if !ok {
		s.authMetrics.xds.WithLabelValues(reasonMissing).Inc()
		return status.Error(codes.Unauthenticated, "meshlens: the stream was not authenticated")
	}
	if p.AllowsKindNode(string(id.Kind), id.Mesh, id.Name) {
		return nil
	}
	s.authMetrics.xds.WithLabelValues(reasonWrongNode).Inc()
	return status.Errorf(codes.PermissionDenied, "meshlens: token %s is not bound to node %s: a proxy receives only its own node's configuration", p, id)
}

// authorizeMetricsNode is the metrics service's Authorize: a proxy
// reports its own node's metrics only; a write token may report any.
func (s *Server) authorizeMetricsNode(ctx context.Context, node string) error {
	p, ok := principalFrom(ctx)
	if !ok {
		s.authMetrics.xds.WithLabelValues(reasonMissing).Inc()
		return status.Error(codes.Unauthenticated, "meshlens: the stream was not authenticated")
	}
	if p.HasRole(auth.RoleWrite) {
		return nil
	}
	id, err := nodeid.Parse(node)
	if err == nil && p.AllowsKindNode(string(id.Kind), id.Mesh, id.Name) {
		return nil
	}
	s.authMetrics.xds.WithLabelValues(reasonWrongNode).Inc()
	s.log.Warn("xds: refused a metrics stream for another node", "node", node, "token", p.String())
	return status.Errorf(codes.PermissionDenied, "meshlens: token %s may not report metrics as node %s", p, node)
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// authStream is a server stream whose context carries the principal.
type authStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a authStream) Context() context.Context { return a.ctx }

// grpcInterceptors are the server options that authenticate every call.
func (s *Server) grpcInterceptors() []grpc.ServerOption {
	if s.cfg.Auth == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ctx, err := s.grpcAuth(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			return handler(srv, authStream{ServerStream: ss, ctx: ctx})
		}),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			ctx, err := s.grpcAuth(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}),
	}
}

// ---- token API ----

func tokenInfo(t auth.Token) restv1.TokenInfo {
	return restv1.TokenInfo{ID: t.ID, Role: string(t.Role), Mesh: t.Mesh, Node: t.Node, Description: t.Description, Created: t.Created}
}

var errNoTokenFile = &restv1.Error{Status: http.StatusNotFound, Code: restv1.CodeNotFound,
	Message: "tokens are not configured on this control plane: start it with --auth-tokens FILE (docs/auth.md)"}

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Auth == nil {
		writeError(w, errNoTokenFile)
		return
	}
	list, err := s.cfg.Auth.List()
	if err != nil {
		writeError(w, err)
		return
	}
	out := restv1.TokenList{Items: []restv1.TokenInfo{}}
	for _, t := range list {
		out.Items = append(out.Items, tokenInfo(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Auth == nil {
		writeError(w, errNoTokenFile)
		return
	}
	var req restv1.TokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest, Message: "request body: " + err.Error()})
		return
	}
	tok, t, err := s.cfg.Auth.Create(auth.Spec{Role: auth.Role(req.Role), Mesh: req.Mesh, Node: req.Node, Description: req.Description})
	if err != nil {
		writeError(w, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest, Message: err.Error()})
		return
	}
	by := "no authentication"
	if p, ok := principalFrom(r.Context()); ok {
		by = p.String()
	}
	s.log.Info("token created", "id", t.ID, "scope", t.Scope(), "by", by)
	writeJSON(w, http.StatusOK, restv1.CreatedToken{Token: tok, TokenInfo: tokenInfo(t)})
}

func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Auth == nil {
		writeError(w, errNoTokenFile)
		return
	}
	t, err := s.cfg.Auth.Revoke(r.PathValue("id"))
	if errors.Is(err, auth.ErrNotFound) {
		writeError(w, &restv1.Error{Status: http.StatusNotFound, Code: restv1.CodeNotFound, Message: err.Error()})
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("token revoked", "id", t.ID, "scope", t.Scope())
	writeJSON(w, http.StatusOK, tokenInfo(t))
}
