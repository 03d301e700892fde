// Package apiclient is the HTTP client of the control plane's REST API,
// shared by the CLI and by sidecars that register their instances. The
// bodies it sends and reads are the public wire types of api/rest/v1; it
// depends only on those and the resource model, so a data plane can use it
// without importing the control plane.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	restv1 "github.com/meshlens/meshlens/api/rest/v1"
)

// ErrUnreachable wraps failures to reach the server at all.
var ErrUnreachable = errors.New("control plane unreachable")

// Client talks to one control plane.
type Client struct {
	base string
	http *http.Client
	// OnWarning, when set, is called with each warning an answer carries
	// in its Warning headers (see restv1.FormatWarning), as kubectl prints
	// admission warnings.
	OnWarning func(string)
	// Token, when set, is sent as Authorization: Bearer <Token>.
	Token string
}

// HTTPClient returns an HTTP client with a 30 s timeout that trusts the
// certificate authorities in the PEM file caFile (for a control plane
// serving TLS with its own CA), or the system's when caFile is empty.
func HTTPClient(caFile string) (*http.Client, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	if caFile == "" {
		return c, nil
	}
	cfg, err := TLSConfig(caFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	c.Transport = tr
	return c, nil
}

// TLSConfig is a client TLS configuration (TLS 1.2 or later) trusting the
// certificate authorities in the PEM file caFile.
func TLSConfig(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca file %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
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
func (c *Client) Apply(ctx context.Context, docs []byte, dryRun bool) (*restv1.ApplyResponse, error) {
	path := "/v1/apply"
	if dryRun {
		path += "?dryRun=true"
	}
	var out restv1.ApplyResponse
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
func (c *Client) Describe(ctx context.Context, k v1alpha1.Key) (*restv1.Description, error) {
	var out restv1.Description
	if err := c.do(ctx, http.MethodGet, ResourcePath(k)+"?view=describe", "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List fetches the resources of kind in mesh, under parent if given.
func (c *Client) List(ctx context.Context, kind v1alpha1.Kind, mesh, parent string) ([]*v1alpha1.Resource, error) {
	var out restv1.ListResponse
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
func (c *Client) Register(ctx context.Context, mesh, node, id string, in restv1.Instance) (*restv1.Instance, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode instance: %w", err)
	}
	var out restv1.Instance
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
func (c *Client) Instances(ctx context.Context, mesh, node string) ([]restv1.Instance, error) {
	var out restv1.InstanceList
	err := c.do(ctx, http.MethodGet, instancePath(mesh, node, ""), "", nil, &out)
	return out.Items, err
}

// CreateToken asks the control plane for a new token (role admin).
func (c *Client) CreateToken(ctx context.Context, req restv1.TokenRequest) (*restv1.CreatedToken, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode token request: %w", err)
	}
	var out restv1.CreatedToken
	if err := c.do(ctx, http.MethodPost, "/v1/tokens", "application/json", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Tokens lists the control plane's tokens (never the tokens themselves).
func (c *Client) Tokens(ctx context.Context) ([]restv1.TokenInfo, error) {
	var out restv1.TokenList
	err := c.do(ctx, http.MethodGet, "/v1/tokens", "", nil, &out)
	return out.Items, err
}

// RevokeToken removes a token by its id.
func (c *Client) RevokeToken(ctx context.Context, id string) (*restv1.TokenInfo, error) {
	var out restv1.TokenInfo
	if err := c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Proxies lists the data planes connected over xDS.
func (c *Client) Proxies(ctx context.Context) ([]restv1.Proxy, error) {
	var out restv1.ProxyList
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
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	if c.OnWarning != nil {
		for _, h := range resp.Header.Values("Warning") {
			if msg, ok := restv1.ParseWarning(h); ok {
				c.OnWarning(msg)
			}
		}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		apiErr := &restv1.Error{Status: resp.StatusCode}
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
