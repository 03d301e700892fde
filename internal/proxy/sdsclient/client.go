// Package sdsclient fetches a proxy's TLS secrets from an external SDS
// server on a Unix socket, as App Mesh's Envoy did with
// APPMESH_SDS_SOCKET_PATH (a SPIRE agent, typically): the secret names
// the listeners and clusters use are asked for on one
// SecretDiscoveryService stream, and every response is handed to the
// proxy's secret store.
package sdsclient

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	tlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/service/discovery/v3"
	resourcev3 "github.com/meshlens/meshlens/internal/xdsproto/resource"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/meshlens/meshlens/internal/xdsproto"
	"google.golang.org/grpc/credentials/insecure"
)

// maxMessage bounds a response from the SDS server.
const maxMessage = 4 << 20

// retry is the pause before reconnecting after the stream fails.
const retry = time.Second

// Client keeps one SDS stream to the socket. Want and Run may be called
// from different goroutines.
type Client struct {
	socket string
	node   *corev3.Node
	update func(map[string]*tlsv3.Secret) error
	log    *slog.Logger

	mu    sync.Mutex
	names []string
	kick  chan struct{}
}

// New returns a client of the SDS server at the Unix socket path; update
// receives every secret held whenever one changes.
func New(socket string, node *corev3.Node, update func(map[string]*tlsv3.Secret) error, log *slog.Logger) *Client {
	if log == nil {
		log = slog.Default()
	}
	return &Client{socket: socket, node: node, update: update, log: log.With("sds_socket", socket), kick: make(chan struct{}, 1)}
}

// Want sets the secret names to ask for (the latest call wins).
func (c *Client) Want(names []string) {
	c.mu.Lock()
	c.names = slices.Clone(names)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Client) wanted() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.names)
}

// Run keeps the stream up until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	conn, err := grpc.NewClient("unix://"+c.socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage)))
	if err != nil {
		return fmt.Errorf("sds %s: %w", c.socket, err)
	}
	defer conn.Close()
	for {
		err := c.stream(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("SDS stream failed; reconnecting", "err", err, "in", retry)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
	}
}

func (c *Client) stream(ctx context.Context, conn grpc.ClientConnInterface) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := xdsproto.NewStream[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse](ctx, conn, xdsproto.MethodStreamSecrets, true)
	if err != nil {
		return err
	}
	recv := make(chan *discoveryv3.DiscoveryResponse)
	errc := make(chan error, 1)
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case recv <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	held := map[string]*tlsv3.Secret{}
	var version, nonce string
	var asked []string
	ask := func(detail error) error {
		req := &discoveryv3.DiscoveryRequest{Node: c.node, TypeUrl: resourcev3.SecretType, VersionInfo: version, ResponseNonce: nonce, ResourceNames: asked}
		if detail != nil {
			req.ErrorDetail = &rpcstatus.Status{Code: 3, Message: detail.Error()}
		}
		return st.Send(req)
	}
	for {
		if names := c.wanted(); !slices.Equal(names, asked) && len(names) > 0 {
			asked = names
			if err := ask(nil); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case <-c.kick:
		case r := <-recv:
			nonce = r.GetNonce()
			got, err := decode(r)
			if err == nil {
				next := maps.Clone(held)
				for n, s := range got {
					if slices.Contains(asked, n) {
						next[n] = s
					}
				}
				if err = c.update(next); err == nil {
					held, version = next, r.GetVersionInfo()
					c.log.Info("SDS secrets updated", "version", version, "secrets", len(held))
				}
			}
			if err != nil {
				c.log.Error("SDS response rejected", "err", err)
			}
			if err := ask(err); err != nil {
				return err
			}
		}
	}
}

// decode unpacks a response's secrets.
func decode(r *discoveryv3.DiscoveryResponse) (map[string]*tlsv3.Secret, error) {
	out := map[string]*tlsv3.Secret{}
	for i, a := range r.GetResources() {
		s := &tlsv3.Secret{}
		if a.GetTypeUrl() != resourcev3.SecretType {
			return nil, fmt.Errorf("resources[%d]: type %s in a secret response", i, a.GetTypeUrl())
		}
		if err := xdsproto.UnmarshalAny(a, s); err != nil {
			return nil, fmt.Errorf("resources[%d]: %w", i, err)
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("secret %s: %w", s.GetName(), err)
		}
		out[s.GetName()] = s
	}
	return out, nil
}
