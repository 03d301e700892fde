// Package apiclient is the client of the control plane's REST API, shared
// by the CLI and by data planes that register their instances. It depends
// only on the public resource model, so the proxy can use it without
// importing the control plane.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// Error codes the API returns, App Mesh's exception names.
const (
	CodeBadRequest     = "BadRequestException"
	CodeNotFound       = "NotFoundException"
	CodeConflict       = "ConflictException"
	CodeResourceInUse  = "ResourceInUseException"
	CodeTooLarge       = "PayloadTooLargeException"
	CodeInternal       = "InternalServerErrorException"
	CodeMethodNotAllow = "MethodNotAllowedException"
)

// Error is an error answer of the API.
type Error struct {
	Status  int                    `json:"-"`
	Code    string                 `json:"code"`
	Message string                 `json:"message"`
	Details []*v1alpha1.FieldError `json:"details,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// ErrUnreachable wraps failures to reach the server at all.
var ErrUnreachable = errors.New("control plane unreachable")

// Result is the outcome of applying one resource.
type Result struct {
	Op       string             `json:"op"`
	Resource *v1alpha1.Resource `json:"resource"`
}

// ApplyResponse is the answer to an apply.
type ApplyResponse struct {
	Revision uint64   `json:"revision"`
	DryRun   bool     `json:"dryRun,omitempty"`
	Results  []Result `json:"results"`
	// Warnings name what the control plane keeps but cannot translate or
	// enforce, for the applied resources and for others the apply
	// affected: "<Kind> <mesh>/<name>: <field>: <what happens instead>".
	Warnings []string `json:"warnings,omitempty"`
}

// ListResponse is the answer to a list.
type ListResponse struct {
	Items []*v1alpha1.Resource `json:"items"`
}

// Instance is a registered instance of a virtual node, as the API shows it.
type Instance struct {
	Mesh          string            `json:"mesh,omitempty"`
	VirtualNode   string            `json:"virtualNode,omitempty"`
	ID            string            `json:"id,omitempty"`
	Address       string            `json:"address"`
	Port          int               `json:"port"`
	HealthStatus  string            `json:"healthStatus,omitempty"`
	NamespaceName string            `json:"namespaceName,omitempty"`
	ServiceName   string            `json:"serviceName,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	TTLSeconds    int               `json:"ttlSeconds,omitempty"`
	RegisteredAt  time.Time         `json:"registeredAt,omitzero"`
	RenewedAt     time.Time         `json:"renewedAt,omitzero"`
	ExpiresAt     time.Time         `json:"expiresAt,omitzero"`
}

// Endpoint is an address the control plane sends traffic to.
type Endpoint struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	Healthy bool   `json:"healthy"`
}

// Proxy is a data plane connected over xDS.
type Proxy struct {
	ID        string `json:"id"`
	Mesh      string `json:"mesh,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
	// Flavour is how the control plane serves it: "envoy" (Envoy and
	// meshlens proxy) or "proxyless" (a gRPC client).
	Flavour   string `json:"flavour,omitempty"`
	Proxyless bool   `json:"proxyless,omitempty"`
	Streams   int    `json:"streams"`
	// Acked is the last version the data plane accepted, by type URL.
	Acked map[string]string `json:"acked,omitempty"`
	// Latest is the version of its current view, by type URL: what it
	// has when it is in sync.
	Latest map[string]string `json:"latest,omitempty"`
	// Sync is each type's state, by type URL: SyncSynced, SyncNotSent,
	// SyncStale or SyncNACKed.
	Sync map[string]string `json:"sync,omitempty"`
	// InSync: every type sent has its latest version accepted.
	InSync bool `json:"inSync"`
	Nacks  int  `json:"nacks,omitempty"`
	// LastNack is the reason of the last rejected response, of type
	// LastNackType and version LastNackVersion, at LastNackAt.
	LastNack        string    `json:"lastNack,omitempty"`
	LastNackType    string    `json:"lastNackType,omitempty"`
	LastNackVersion string    `json:"lastNackVersion,omitempty"`
	LastNackAt      time.Time `json:"lastNackAt,omitzero"`
	ConnectedAt     time.Time `json:"connectedAt,omitzero"`
}

// The states of one xDS type of a Proxy, as istioctl proxy-status names
// them.
const (
	SyncSynced  = "SYNCED"   // the latest version is accepted
	SyncNotSent = "NOT SENT" // nothing of the type was sent (not subscribed, or nothing yet)
	SyncStale   = "STALE"    // a version was sent and not yet accepted, or an older one is held
	SyncNACKed  = "NACKED"   // the last version sent was rejected
)

// Description is a resource with what surrounds it.
type Description struct {
	Resource   *v1alpha1.Resource `json:"resource"`
	ReferredBy []v1alpha1.Key     `json:"referredBy"`
	Instances  []Instance         `json:"instances,omitempty"`
	Endpoints  []Endpoint         `json:"endpoints,omitempty"`
	Proxies    []Proxy            `json:"proxies,omitempty"`
	// Warnings name what the control plane keeps of the resource but
	// cannot translate or enforce.
	Warnings []string `json:"warnings,omitempty"`
}

// Client talks to one control plane.
type Client struct {
	base string
	http *http.Client
	// OnWarning, when set, is called with each warning an answer carries
	// in its Warning headers (see FormatWarning), as kubectl prints
	// admission warnings.
	OnWarning func(string)
}

// New returns a client for the API at base (e.g. http://127.0.0.1:7070).
// A nil httpClient gets one with a 30 s timeout.
func New(base string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://HOST:PORT or https://HOST:PORT", base)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(base, "/"), http: httpClient}, nil
}

// CollectionPath is the REST path of the resources of kind in mesh (under
// parent for routes and gateway routes; every parent when parent is empty).
func CollectionPath(kind v1alpha1.Kind, mesh, parent string) string {
	switch {
	case kind == v1alpha1.KindMesh:
		return "/v1/meshes"
	case kind == v1alpha1.KindRoute && parent != "":
		return "/v1/meshes/" + url.PathEscape(mesh) + "/virtualRouters/" + url.PathEscape(parent) + "/routes"
	case kind == v1alpha1.KindGatewayRoute && parent != "":
		return "/v1/meshes/" + url.PathEscape(mesh) + "/virtualGateways/" + url.PathEscape(parent) + "/gatewayRoutes"
	}
	return "/v1/meshes/" + url.PathEscape(mesh) + "/" + kind.Plural()
}

// ResourcePath is the REST path of one resource.
func ResourcePath(k v1alpha1.Key) string {
	return CollectionPath(k.Kind, k.Mesh, k.Parent) + "/" + url.PathEscape(k.Name)
}

// Apply sends documents (YAML or JSON, any form Decode accepts) as one
// atomic batch.
func (c *Client) Apply(ctx context.Context, docs []byte, dryRun bool) (*ApplyResponse, error) {
	path := "/v1/apply"
	if dryRun {
		path += "?dryRun=true"
	}
	var out ApplyResponse
	err := c.do(ctx, http.MethodPost, path, "application/yaml", docs, &out)
	return &out, err
}

// Get fetches one resource.
func (c *Client) Get(ctx context.Context, k v1alpha1.Key) (*v1alpha1.Resource, error) {
	var out v1alpha1.Resource
	if err := c.do(ctx, http.MethodGet, ResourcePath(k), "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Describe fetches one resource with its referrers, instances and proxies.
func (c *Client) Describe(ctx context.Context, k v1alpha1.Key) (*Description, error) {
	var out Description
	if err := c.do(ctx, http.MethodGet, ResourcePath(k)+"?view=describe", "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List fetches the resources of kind in mesh, under parent if given.
func (c *Client) List(ctx context.Context, kind v1alpha1.Kind, mesh, parent string) ([]*v1alpha1.Resource, error) {
	var out ListResponse
	if err := c.do(ctx, http.MethodGet, CollectionPath(kind, mesh, parent), "", nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// Delete removes one resource; version, when not zero, must be current.
func (c *Client) Delete(ctx context.Context, k v1alpha1.Key, version int64) (*v1alpha1.Resource, error) {
	path := ResourcePath(k)
	if version != 0 {
		path += fmt.Sprintf("?version=%d", version)
	}
	var out v1alpha1.Resource
	if err := c.do(ctx, http.MethodDelete, path, "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func instancePath(mesh, node, id string) string {
	p := ResourcePath(v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: mesh, Name: node}) + "/instances"
	if id != "" {
		p += "/" + url.PathEscape(id)
	}
	return p
}

// Register registers or renews an instance of a virtual node.
func (c *Client) Register(ctx context.Context, mesh, node, id string, in Instance) (*Instance, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode instance: %w", err)
	}
	var out Instance
	if err := c.do(ctx, http.MethodPut, instancePath(mesh, node, id), "application/json", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Deregister removes an instance.
func (c *Client) Deregister(ctx context.Context, mesh, node, id string) error {
	return c.do(ctx, http.MethodDelete, instancePath(mesh, node, id), "", nil, nil)
}

// Instances lists the live instances of a virtual node.
func (c *Client) Instances(ctx context.Context, mesh, node string) ([]Instance, error) {
	var out struct {
		Items []Instance `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, instancePath(mesh, node, ""), "", nil, &out)
	return out.Items, err
}

// Proxies lists the data planes connected over xDS.
func (c *Client) Proxies(ctx context.Context) ([]Proxy, error) {
	var out struct {
		Items []Proxy `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/proxies", "", nil, &out)
	return out.Items, err
}

// maxResponse bounds what the client reads from the server.
const maxResponse = 64 << 20

func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	if c.OnWarning != nil {
		for _, h := range resp.Header.Values("Warning") {
			if msg, ok := ParseWarning(h); ok {
				c.OnWarning(msg)
			}
		}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		apiErr := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, apiErr) != nil || apiErr.Message == "" {
			apiErr.Code = http.StatusText(resp.StatusCode)
			apiErr.Message = strings.TrimSpace(string(data))
			if apiErr.Message == "" {
				apiErr.Message = resp.Status
			}
		}
		return apiErr
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}
