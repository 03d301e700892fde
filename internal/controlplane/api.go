package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/meshlens/meshlens/internal/console"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/consoleui"
	"github.com/meshlens/meshlens/internal/metricshistory"
	"github.com/meshlens/meshlens/internal/registry"
	"github.com/meshlens/meshlens/internal/store"
)

// api builds the REST API's handler. Paths follow App Mesh's REST API
// (/v20190125/meshes/{mesh}/virtualNodes/{name}) under /v1; answers are
// meshlens documents; errors carry App Mesh's exception names.
func (s *Server) api() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		s.handleHealthz(w, r)
	})
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("POST /v1/apply", s.handleApply)
	mux.HandleFunc("GET /v1/proxies", s.handleProxies)
	mux.HandleFunc("GET /v1/tap", s.handleTap)
	mux.HandleFunc("GET /v1/tokens", s.handleListTokens)
	mux.HandleFunc("POST /v1/tokens", s.handleCreateToken)
	mux.HandleFunc("DELETE /v1/tokens/{id}", s.handleRevokeToken)

	mux.HandleFunc("GET /v1/meshes", s.handleList)
	mux.HandleFunc("GET /v1/meshes/{mesh}", s.handleGet)
	mux.HandleFunc("PUT /v1/meshes/{mesh}", s.handlePut)
	mux.HandleFunc("DELETE /v1/meshes/{mesh}", s.handleDelete)

	mux.HandleFunc("GET /v1/meshes/{mesh}/{plural}", s.handleList)
	mux.HandleFunc("GET /v1/meshes/{mesh}/{plural}/{name}", s.handleGet)
	mux.HandleFunc("PUT /v1/meshes/{mesh}/{plural}/{name}", s.handlePut)
	mux.HandleFunc("DELETE /v1/meshes/{mesh}/{plural}/{name}", s.handleDelete)

	for _, parent := range []string{"virtualRouters/{parent}/routes", "virtualGateways/{parent}/gatewayRoutes"} {
		base := "/v1/meshes/{mesh}/" + parent
		mux.HandleFunc("GET "+base, s.handleList)
		mux.HandleFunc("GET "+base+"/{name}", s.handleGet)
		mux.HandleFunc("PUT "+base+"/{name}", s.handlePut)
		mux.HandleFunc("DELETE "+base+"/{name}", s.handleDelete)
	}

	inst := "/v1/meshes/{mesh}/virtualNodes/{node}/instances"
	mux.HandleFunc("GET "+inst, s.handleListInstances)
	mux.HandleFunc("PUT "+inst+"/{id}", s.handleRegister)
	mux.HandleFunc("DELETE "+inst+"/{id}", s.handleDeregister)

	// Jaeger's query API, answered for every replica's trace store.
	traceQueries := http.NewServeMux()
	s.traces.RegisterQuery(traceQueries)
	mux.Handle("GET /api/", s.fanOutTraces(traceQueries))
	mux.HandleFunc("POST /v1/console/validate", s.handleConsoleValidate)
	traffic := s.traffic
	if s.cluster != nil && traffic == metricshistory.Reader(s.history) {
		traffic = wholeMeshTraffic{s}
	}
	ch := &console.Handler{Resources: func() v1alpha1.Lookup { return s.store.Snapshot() }, Metrics: traffic, Nodes: s.receiver.Nodes}
	if s.cluster != nil {
		ch.PeerInstances = s.peerInstances
	}
	ch.Register(mux)
	mux.HandleFunc("GET /v1/console/history/stats", s.handleHistoryStats)
	mux.HandleFunc("GET /v1/console/history/range", s.handleHistoryRange)
	if !s.cfg.DisableOTLP {
		s.traces.RegisterOTLP(mux)
	}

	mux.Handle(consoleui.Prefix, consoleui.Handler(consoleui.Options{Auth: s.cfg.Auth != nil}))

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &restv1.Error{Status: http.StatusNotFound, Code: restv1.CodeNotFound,
			Message: fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path)})
	})
	return s.metrics.countRequests(s.authenticate(withAuthorization(mux)))
}

// keyFromPath works out which kind and names a request's path addresses.
// For /v1/meshes/{mesh}/routes (every router) parent stays empty.
func keyFromPath(r *http.Request) (v1alpha1.Key, error) {
	mesh := r.PathValue("mesh")
	if mesh == "" {
		return v1alpha1.Key{Kind: v1alpha1.KindMesh}, nil
	}
	k := v1alpha1.Key{Mesh: mesh, Parent: r.PathValue("parent"), Name: r.PathValue("name")}
	switch {
	case strings.Contains(r.Pattern, "/virtualRouters/{parent}/routes"):
		k.Kind = v1alpha1.KindRoute
	case strings.Contains(r.Pattern, "/virtualGateways/{parent}/gatewayRoutes"):
		k.Kind = v1alpha1.KindGatewayRoute
	case r.PathValue("plural") == "":
		k.Kind, k.Name, k.Mesh = v1alpha1.KindMesh, mesh, ""
	default:
		kind, err := v1alpha1.ParseKind(r.PathValue("plural"))
		if err != nil || kind == v1alpha1.KindMesh || r.PathValue("plural") != kind.Plural() {
			return k, &restv1.Error{Status: http.StatusNotFound, Code: restv1.CodeNotFound,
				Message: fmt.Sprintf("no resource collection %q: want one of virtualNodes, virtualServices, virtualRouters, routes, virtualGateways, gatewayRoutes", r.PathValue("plural"))}
		}
		k.Kind = kind
	}
	return k, nil
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	k, err := keyFromPath(r)
	if err != nil {
		writeError(w, err)
		return
	}
	snap, err := s.store.Current(r.Context())
	if err != nil {
		writeError(w, fmt.Errorf("read the store: %w", err))
		return
	}
	parent := k.Parent
	if parent == "" {
		parent = r.URL.Query().Get(map[v1alpha1.Kind]string{v1alpha1.KindRoute: "virtualRouter", v1alpha1.KindGatewayRoute: "virtualGateway"}[k.Kind])
	}
	if k.Kind != v1alpha1.KindMesh && snap.Get(v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: k.Mesh}) == nil {
		writeError(w, notFound(v1alpha1.Key{Kind: v1alpha1.KindMesh, Name: k.Mesh}))
		return
	}
	items := snap.List(k.Kind, k.Mesh, parent)
	if items == nil {
		items = []*v1alpha1.Resource{}
	}
	keys := make([]v1alpha1.Key, len(items))
	for i, it := range items {
		keys[i] = it.Key()
	}
	setWarningHeaders(w, s.readWarnings(snap, keys))
	writeJSON(w, http.StatusOK, restv1.ListResponse{Items: items})
}

// resolve finds the resource a path names. A route or gateway route named
// without its parent is found if its name is unique in the mesh.
func (s *Server) resolve(snap *store.Snapshot, k v1alpha1.Key) (*v1alpha1.Resource, error) {
	if (k.Kind == v1alpha1.KindRoute || k.Kind == v1alpha1.KindGatewayRoute) && k.Parent == "" {
		var found []*v1alpha1.Resource
		for _, c := range snap.List(k.Kind, k.Mesh, "") {
			if c.Name == k.Name {
				found = append(found, c)
			}
		}
		switch len(found) {
		case 0:
			return nil, notFound(k)
		case 1:
			return found[0], nil
		}
		var parents []string
		for _, c := range found {
			parents = append(parents, c.Key().Parent)
		}
		return nil, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest,
			Message: fmt.Sprintf("%s %s/%s is ambiguous: it exists under %s; name the parent", k.Kind, k.Mesh, k.Name, strings.Join(parents, ", "))}
	}
	res := snap.Get(k)
	if res == nil {
		return nil, notFound(k)
	}
	return res, nil
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	k, err := keyFromPath(r)
	if err != nil {
		writeError(w, err)
		return
	}
	snap, err := s.store.Current(r.Context())
	if err != nil {
		writeError(w, fmt.Errorf("read the store: %w", err))
		return
	}
	res, err := s.resolve(snap, k)
	if err != nil {
		writeError(w, err)
		return
	}
	if r.URL.Query().Get("view") != "describe" {
		setWarningHeaders(w, s.readWarnings(snap, []v1alpha1.Key{res.Key()}))
		writeJSON(w, http.StatusOK, res)
		return
	}
	writeJSON(w, http.StatusOK, s.describe(snap, res))
}

func (s *Server) describe(snap *store.Snapshot, res *v1alpha1.Resource) restv1.Description {
	d := restv1.Description{Resource: res, ReferredBy: v1alpha1.Referrers(snap, res.Key()),
		Warnings: s.warningsOf(snap, []v1alpha1.Key{res.Key()}, true)[res.Key()]}
	if d.ReferredBy == nil {
		d.ReferredBy = []v1alpha1.Key{}
	}
	switch res.Kind {
	case v1alpha1.KindVirtualNode:
		for _, in := range s.registry.List(res.Mesh, res.Name) {
			d.Instances = append(d.Instances, toAPIInstance(in))
		}
		for _, e := range s.endpointView(snap).Endpoints(res.Mesh, res.Name) {
			d.Endpoints = append(d.Endpoints, restv1.Endpoint{Address: e.Address, Port: e.Port, Healthy: e.Healthy})
		}
		d.Proxies = s.proxies(string(res.Kind), res.Mesh, res.Name)
	case v1alpha1.KindVirtualGateway:
		d.Proxies = s.proxies(string(res.Kind), res.Mesh, res.Name)
	}
	return d
}

// decodeBody reads at most MaxBodyBytes of documents.
func (s *Server) decodeBody(r *http.Request) ([]*v1alpha1.Resource, error) {
	docs, err := v1alpha1.DecodeReader(r.Body, s.cfg.MaxBodyBytes)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) || errors.Is(err, v1alpha1.ErrInputTooLarge) {
			return nil, &restv1.Error{Status: http.StatusRequestEntityTooLarge, Code: restv1.CodeTooLarge,
				Message: fmt.Sprintf("request body: larger than the limit of %d bytes", s.cfg.MaxBodyBytes)}
		}
		return nil, badRequest(err)
	}
	return docs, nil
}

func (s *Server) handleApply(w http.ResponseWriter, r *http.Request) {
	docs, err := s.decodeBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(docs) == 0 {
		writeError(w, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest, Message: "request body: no documents"})
		return
	}
	dryRun, _ := strconv.ParseBool(r.URL.Query().Get("dryRun"))
	s.applyAndAnswer(r.Context(), w, docs, dryRun)
}

func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	k, err := keyFromPath(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if (k.Kind == v1alpha1.KindRoute || k.Kind == v1alpha1.KindGatewayRoute) && k.Parent == "" {
		writeError(w, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest,
			Message: fmt.Sprintf("PUT a %s under its parent: /v1/meshes/%s/%s/{parent}/%s/%s", k.Kind, k.Mesh,
				map[v1alpha1.Kind]string{v1alpha1.KindRoute: "virtualRouters", v1alpha1.KindGatewayRoute: "virtualGateways"}[k.Kind], k.Kind.Plural(), k.Name)})
		return
	}
	docs, err := s.decodeBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(docs) != 1 {
		writeError(w, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest,
			Message: fmt.Sprintf("request body: want exactly one document, got %d", len(docs))})
		return
	}
	if got := docs[0].Key(); got != k {
		writeError(w, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest,
			Message: fmt.Sprintf("request body: the document is %s but the path names %s", got, k)})
		return
	}
	s.applyAndAnswer(r.Context(), w, docs, false)
}

// check enforces the rules that span resources inside the store's write.
func check(next *store.Snapshot, changed []v1alpha1.Key) error {
	return v1alpha1.CheckReferences(next, changed)
}

func (s *Server) applyAndAnswer(ctx context.Context, w http.ResponseWriter, docs []*v1alpha1.Resource, dryRun bool) {
	var fieldErrs []*v1alpha1.FieldError
	var msgs []string
	for i, d := range docs {
		if err := d.Validate(); err != nil {
			prefix := fmt.Sprintf("document %d (%s)", i+1, d.Key())
			var fe v1alpha1.FieldErrors
			if errors.As(err, &fe) {
				for _, e := range fe {
					fieldErrs = append(fieldErrs, &v1alpha1.FieldError{Path: prefix + ": " + e.Path, Message: e.Message})
				}
			}
			msgs = append(msgs, prefix+": "+err.Error())
		}
	}
	if len(msgs) > 0 {
		writeError(w, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest,
			Message: strings.Join(msgs, "\n"), Details: fieldErrs})
		return
	}
	// The warnings compare the state the batch is checked against with
	// the state it makes.
	var before, after *store.Snapshot
	chk := func(next *store.Snapshot, changed []v1alpha1.Key) error {
		if err := check(next, changed); err != nil {
			return err
		}
		after = next
		if dryRun {
			return errDryRun
		}
		return nil
	}
	before = s.store.Snapshot()
	warnings := func(keys []v1alpha1.Key) []string {
		if after == nil {
			// Nothing changed, so nothing was checked: the warnings are
			// those of the current state.
			after = s.store.Snapshot()
		}
		return applyWarnings(s.warningsOf(before, keys, true), s.warningsOf(after, keys, !dryRun), keys)
	}
	start := time.Now()
	results, err := s.store.Apply(ctx, docs, chk)
	op := "apply"
	if dryRun {
		op = "dry_run"
	}
	s.metrics.observeStore(op, start, err)
	if dryRun && errors.Is(err, errDryRun) {
		out := restv1.ApplyResponse{DryRun: true, Revision: s.store.Snapshot().Revision()}
		keys := make([]v1alpha1.Key, 0, len(docs))
		for _, d := range docs {
			out.Results = append(out.Results, restv1.Result{Op: "valid", Resource: d})
			keys = append(keys, d.Key())
		}
		out.Warnings = warnings(keys)
		setWarningHeaders(w, out.Warnings)
		writeJSON(w, http.StatusOK, out)
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	out := restv1.ApplyResponse{Revision: s.store.Snapshot().Revision()}
	keys := make([]v1alpha1.Key, 0, len(results))
	for _, res := range results {
		out.Results = append(out.Results, restv1.Result{Op: string(res.Op), Resource: res.Resource})
		keys = append(keys, res.Resource.Key())
	}
	for _, res := range results {
		if res.Op != store.OpUnchanged {
			s.log.Info("resource applied", "key", res.Resource.Key().String(), "op", res.Op, "version", res.Resource.Metadata.Version)
		}
	}
	s.awaitPushed(ctx, s.store.Snapshot())
	if s.beforeApplyWarnings != nil {
		s.beforeApplyWarnings()
	}
	out.Warnings = warnings(keys)
	setWarningHeaders(w, out.Warnings)
	writeJSON(w, http.StatusOK, out)
}

var errDryRun = errors.New("dry run: not written")

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	k, err := keyFromPath(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var version int64
	if v := r.URL.Query().Get("version"); v != "" {
		if version, err = strconv.ParseInt(v, 10, 64); err != nil || version < 1 {
			writeError(w, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest, Message: "version: must be a positive integer"})
			return
		}
	}
	res, err := s.resolve(s.store.Snapshot(), k)
	if err != nil {
		writeError(w, err)
		return
	}
	start := time.Now()
	deleted, err := s.store.Delete(r.Context(), res.Key(), version, check)
	s.metrics.observeStore("delete", start, err)
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("resource deleted", "key", deleted.Key().String())
	writeJSON(w, http.StatusOK, deleted)
}

// ---- instances ----

func toAPIInstance(in registry.Instance) restv1.Instance {
	return restv1.Instance{
		Mesh: in.Mesh, VirtualNode: in.VirtualNode, ID: in.ID, Address: in.Address, Port: in.Port,
		HealthStatus: in.HealthStatus, NamespaceName: in.NamespaceName, ServiceName: in.ServiceName,
		Attributes: in.Attributes, TTLSeconds: in.TTLSeconds,
		RegisteredAt: in.RegisteredAt, RenewedAt: in.RenewedAt, ExpiresAt: in.ExpiresAt,
	}
}

func (s *Server) handleListInstances(w http.ResponseWriter, r *http.Request) {
	mesh, node := r.PathValue("mesh"), r.PathValue("node")
	if s.store.Snapshot().Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: mesh, Name: node}) == nil {
		writeError(w, notFound(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: mesh, Name: node}))
		return
	}
	items := []restv1.Instance{}
	for _, in := range s.registry.List(mesh, node) {
		items = append(items, toAPIInstance(in))
	}
	writeJSON(w, http.StatusOK, restv1.InstanceList{Items: items})
}

// maxInstanceBody bounds a registration's body.
const maxInstanceBody = 64 << 10

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	mesh, node, id := r.PathValue("mesh"), r.PathValue("node"), r.PathValue("id")
	snap, err := s.store.Current(r.Context())
	if err != nil {
		writeError(w, fmt.Errorf("read the store: %w", err))
		return
	}
	vn := snap.Get(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: mesh, Name: node})
	if vn == nil {
		writeError(w, notFound(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: mesh, Name: node}))
		return
	}
	var body restv1.Instance
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxInstanceBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest, Message: "request body: " + err.Error()})
		return
	}
	in := registry.Instance{
		Mesh: mesh, VirtualNode: node, ID: id, Address: body.Address, Port: body.Port,
		HealthStatus: body.HealthStatus, NamespaceName: body.NamespaceName, ServiceName: body.ServiceName,
		Attributes: body.Attributes, TTLSeconds: body.TTLSeconds,
	}
	// An instance of a node discovered through the registry joins the
	// node's namespace and service unless it says otherwise.
	if sd := vn.VirtualNodeSpec.ServiceDiscovery; sd != nil && sd.AWSCloudMap != nil {
		if in.NamespaceName == "" {
			in.NamespaceName = sd.AWSCloudMap.NamespaceName
		}
		if in.ServiceName == "" {
			in.ServiceName = sd.AWSCloudMap.ServiceName
		}
		if in.Attributes == nil && len(sd.AWSCloudMap.Attributes) > 0 {
			in.Attributes = map[string]string{}
			for _, a := range sd.AWSCloudMap.Attributes {
				in.Attributes[a.Key] = a.Value
			}
		}
	}
	var got registry.Instance
	if s.leased != nil {
		got, err = s.leased.Register(r.Context(), in)
	} else {
		got, err = s.registry.Register(in)
	}
	if errors.Is(err, registry.ErrInvalid) || (err != nil && s.leased == nil) {
		writeError(w, badRequest(err))
		return
	}
	if err != nil {
		writeError(w, fmt.Errorf("register: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, toAPIInstance(got))
}

func (s *Server) handleDeregister(w http.ResponseWriter, r *http.Request) {
	mesh, node, id := r.PathValue("mesh"), r.PathValue("node"), r.PathValue("id")
	var err error
	if s.leased != nil {
		err = s.leased.Deregister(r.Context(), mesh, node, id)
	} else {
		err = s.registry.Deregister(mesh, node, id)
	}
	if errors.Is(err, registry.ErrNotFound) {
		writeError(w, &restv1.Error{Status: http.StatusNotFound, Code: restv1.CodeNotFound, Message: err.Error()})
		return
	}
	if err != nil {
		writeError(w, fmt.Errorf("deregister: %w", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- answers ----

func notFound(k v1alpha1.Key) error {
	return &restv1.Error{Status: http.StatusNotFound, Code: restv1.CodeNotFound, Message: k.String() + " not found"}
}

func badRequest(err error) error {
	e := &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest, Message: err.Error()}
	var fe *v1alpha1.FieldError
	var fes v1alpha1.FieldErrors
	switch {
	case errors.As(err, &fes):
		e.Details = fes
	case errors.As(err, &fe):
		e.Details = []*v1alpha1.FieldError{fe}
	}
	return e
}

// writeError maps an error to App Mesh's exception names and HTTP status.
func writeError(w http.ResponseWriter, err error) {
	var apiErr *restv1.Error
	switch {
	case errors.As(err, &apiErr):
	case errors.Is(err, v1alpha1.ErrResourceInUse):
		apiErr = &restv1.Error{Status: http.StatusConflict, Code: restv1.CodeResourceInUse, Message: err.Error()}
	case errors.Is(err, store.ErrConflict):
		apiErr = &restv1.Error{Status: http.StatusConflict, Code: restv1.CodeConflict, Message: err.Error()}
	case errors.Is(err, store.ErrTooLarge):
		apiErr = &restv1.Error{Status: http.StatusRequestEntityTooLarge, Code: restv1.CodeTooLarge, Message: err.Error()}
	case errors.Is(err, store.ErrNotFound):
		apiErr = &restv1.Error{Status: http.StatusNotFound, Code: restv1.CodeNotFound, Message: err.Error()}
	case errors.Is(err, v1alpha1.ErrReferenceNotFound), errors.Is(err, v1alpha1.ErrInvalidReference):
		apiErr = &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest, Message: err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		apiErr = &restv1.Error{Status: http.StatusServiceUnavailable, Code: restv1.CodeInternal, Message: err.Error()}
	default:
		apiErr = &restv1.Error{Status: http.StatusInternalServerError, Code: restv1.CodeInternal, Message: err.Error()}
	}
	writeJSON(w, apiErr.Status, apiErr)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"code":"InternalServerErrorException","message":"encode response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.Copy(w, &buf)
}
