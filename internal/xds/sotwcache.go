package xds

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"sync"
	"weak"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// sotwCache answers the state-of-the-world ADS streams of Envoy-flavoured
// data planes, as go-control-plane's snapshot cache in ADS mode does, but
// builds each response's resources once for every stream that gets them.
//
// go-control-plane's snapshot cache builds, for every stream it answers,
// a response of its own: the list of resources, a map of their names, an
// Any per resource and the message gRPC then encodes resource by resource.
// At thousands of streams that per-stream work was most of what a change
// cost the control plane. Here a type's resources, identified by the
// type's content version (a hash of the names and contents, so equal
// versions are equal sets), are encoded once as the repeated resources
// field of a DiscoveryResponse; a stream's response is a small message with
// its version and type, and those bytes as its unknown fields, which
// protobuf writes out verbatim: the client decodes them as the resources.
// go-control-plane's server still sets each response's nonce, runs the
// callbacks and tracks subscriptions, so the protocol is its own.
//
// What it answers, exactly as the snapshot cache in ADS mode does:
//
//   - a request whose version differs from the snapshot's is answered at
//     once; one with the snapshot's version is answered only when it
//     subscribes to a resource the stream has not been sent yet (a new
//     name, or a new wildcard), otherwise it waits for the next snapshot;
//   - a request that names resources is answered only when the names
//     cover every resource of that type in the snapshot, and then with all
//     of them (ADS: Envoy asks again with the names it needs); otherwise
//     it is not answered at all;
//   - a new snapshot answers the waiting requests whose version differs,
//     in the order clusters, endpoints, listeners, routes.
//
// Delta streams and REST fetches stay with go-control-plane's snapshot
// cache, which the server gives the same snapshots.
type sotwCache struct {
	hash cache.NodeHash
	log  cacheLogger
	// fetch answers REST fetches: the snapshot cache holding the same
	// snapshots.
	fetch cache.ConfigFetcher

	mu      sync.Mutex
	nodes   map[string]*sotwNode
	watchID int64

	// shared holds the encoded resources of each (type, version) that a
	// snapshot holds, weakly: views of one input share them.
	sharedMu sync.Mutex
	shared   map[sharedKey]weak.Pointer[typeResources]
}

type sharedKey struct{ typeURL, version string }

// sotwNode is one snapshot key's snapshot and waiting requests.
type sotwNode struct {
	snap    *sotwSnapshot // nil until the first snapshot
	watches map[int64]sotwWatch
}

type sotwWatch struct {
	req *cache.Request
	sub cache.Subscription
	ch  chan cache.Response
}

// sotwSnapshot is a snapshot as the cache serves it: per response type,
// its encoded resources.
type sotwSnapshot struct {
	types [types.UnknownType]*typeResources
}

// typeResources are the resources of one type at one version, encoded
// once for every response that carries them.
type typeResources struct {
	typeURL string
	version string
	names   []string // sorted
	// enc is the resources as field 2 (resources) of a
	// DiscoveryResponse: one Any per resource, in name order.
	enc []byte
}

func newSotwCache(hash cache.NodeHash, log cacheLogger, fetch cache.ConfigFetcher) *sotwCache {
	return &sotwCache{hash: hash, log: log, fetch: fetch, nodes: map[string]*sotwNode{},
		shared: map[sharedKey]weak.Pointer[typeResources]{}}
}

// prepare turns a go-control-plane snapshot into what the cache serves,
// encoding each (type, version) once. It may run on any goroutine.
func (c *sotwCache) prepare(snap *cache.Snapshot) *sotwSnapshot {
	out := &sotwSnapshot{}
	for i := range out.types {
		typeURL, err := cache.GetResponseTypeURL(types.ResponseType(i))
		if err != nil {
			continue
		}
		rs := snap.Resources[i]
		out.types[i] = c.typeResources(typeURL, rs.Version, rs.Items)
	}
	return out
}

// typeResources returns the shared encoding of one type's resources.
func (c *sotwCache) typeResources(typeURL, version string, items map[string]types.ResourceWithTTL) *typeResources {
	k := sharedKey{typeURL, version}
	c.sharedMu.Lock()
	if tr := c.shared[k].Value(); tr != nil {
		c.sharedMu.Unlock()
		return tr
	}
	c.sharedMu.Unlock()
	tr := encodeTypeResources(typeURL, version, items)
	c.sharedMu.Lock()
	defer c.sharedMu.Unlock()
	if prev := c.shared[k].Value(); prev != nil {
		return prev
	}
	wp := weak.Make(tr)
	c.shared[k] = wp
	runtime.AddCleanup(tr, func(k sharedKey) {
		c.sharedMu.Lock()
		if c.shared[k] == wp {
			delete(c.shared, k)
		}
		c.sharedMu.Unlock()
	}, k)
	return tr
}

// encodeTypeResources encodes items, by name, as the resources of a
// DiscoveryResponse of typeURL.
func encodeTypeResources(typeURL, version string, items map[string]types.ResourceWithTTL) *typeResources {
	tr := &typeResources{typeURL: typeURL, version: version, names: slices.Sorted(maps.Keys(items))}
	size := 0
	bodies := make([][]byte, len(tr.names))
	for i, name := range tr.names {
		b, err := cache.MarshalResource(items[name].Resource)
		if err != nil {
			// Generated messages always marshal; an encoded resource
			// never fails.
			b = nil
		}
		bodies[i] = b
		size += 2*binaryOverhead + len(typeURL) + len(b)
	}
	enc := make([]byte, 0, size)
	for _, b := range bodies {
		anyLen := protowire.SizeTag(1) + protowire.SizeBytes(len(typeURL)) + protowire.SizeTag(2) + protowire.SizeBytes(len(b))
		enc = protowire.AppendTag(enc, 2, protowire.BytesType)
		enc = protowire.AppendVarint(enc, uint64(anyLen))
		enc = protowire.AppendTag(enc, 1, protowire.BytesType)
		enc = protowire.AppendString(enc, typeURL)
		enc = protowire.AppendTag(enc, 2, protowire.BytesType)
		enc = protowire.AppendBytes(enc, b)
	}
	tr.enc = enc
	return tr
}

// binaryOverhead bounds the tag and length bytes of one field.
const binaryOverhead = 1 + 10

// setSnapshot serves snap to the node from now on and answers its waiting
// requests whose version differs, in ADS order.
func (c *sotwCache) setSnapshot(ctx context.Context, key string, snap *sotwSnapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[key]
	if n == nil {
		n = &sotwNode{watches: map[int64]sotwWatch{}}
		c.nodes[key] = n
	}
	n.snap = snap
	if len(n.watches) == 0 {
		return
	}
	ids := slices.Collect(maps.Keys(n.watches))
	slices.SortFunc(ids, func(a, b int64) int {
		ta, tb := cache.GetResponseType(n.watches[a].req.GetTypeUrl()), cache.GetResponseType(n.watches[b].req.GetTypeUrl())
		if ta != tb {
			return int(ta) - int(tb)
		}
		return int(a - b)
	})
	for _, id := range ids {
		w := n.watches[id]
		tr := snap.of(w.req.GetTypeUrl())
		if tr.version == w.req.GetVersionInfo() {
			continue
		}
		c.respond(ctx, w, tr)
		delete(n.watches, id)
	}
}

// clearSnapshot forgets a node, its snapshot and its waiting requests.
func (c *sotwCache) clearSnapshot(key string) {
	c.mu.Lock()
	delete(c.nodes, key)
	c.mu.Unlock()
}

// of returns the resources of typeURL (empty for a type the snapshot
// does not know).
func (s *sotwSnapshot) of(typeURL string) *typeResources {
	t := cache.GetResponseType(typeURL)
	if int(t) < len(s.types) && s.types[t] != nil {
		return s.types[t]
	}
	return &typeResources{typeURL: typeURL}
}

// CreateWatch answers req at once when it can (see sotwCache), and
// otherwise keeps it until a snapshot answers it.
func (c *sotwCache) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	key := c.hash.ID(req.GetNode())
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[key]
	if n == nil {
		n = &sotwNode{watches: map[int64]sotwWatch{}}
		c.nodes[key] = n
	}
	w := sotwWatch{req: req, sub: sub, ch: ch}
	wait := func() func() {
		c.watchID++
		id := c.watchID
		n.watches[id] = w
		return func() {
			c.mu.Lock()
			delete(n.watches, id)
			c.mu.Unlock()
		}
	}
	if n.snap == nil {
		return wait(), nil
	}
	tr := n.snap.of(req.GetTypeUrl())
	if req.GetVersionInfo() == tr.version && !newToStream(tr, sub) {
		return wait(), nil
	}
	c.respond(context.Background(), w, tr)
	return func() {}, nil
}

// newToStream reports whether the stream subscribes to a resource of tr
// it has not been sent.
func newToStream(tr *typeResources, sub cache.Subscription) bool {
	known := sub.ReturnedResources()
	if sub.IsWildcard() {
		for _, name := range tr.names {
			if _, ok := known[name]; !ok {
				return true
			}
		}
		return false
	}
	for name := range sub.SubscribedResources() {
		if _, ok := known[name]; !ok {
			if _, found := slices.BinarySearch(tr.names, name); found {
				return true
			}
		}
	}
	return false
}

// respond sends w the resources of tr, unless its request names resources
// and the names do not cover them all (ADS: then it is not answered).
// The channel has room for a response of every type, as the server's
// ordered ADS loop provides.
func (c *sotwCache) respond(ctx context.Context, w sotwWatch, tr *typeResources) {
	if names := w.req.GetResourceNames(); len(names) != 0 {
		for _, name := range tr.names {
			if !slices.Contains(names, name) {
				c.log.Warnf("ADS mode: not responding to request %s %v: %q not listed", w.req.GetTypeUrl(), names, name)
				return
			}
		}
	}
	select {
	case w.ch <- &sotwResponse{req: w.req, tr: tr, ctx: ctx}:
	case <-ctx.Done():
	}
}

// Fetch answers a REST fetch from the snapshot cache that holds the same
// snapshots.
func (c *sotwCache) Fetch(ctx context.Context, req *cache.Request) (cache.Response, error) {
	return c.fetch.Fetch(ctx, req)
}

// CreateDeltaWatch is not served by this cache: the server sends delta
// streams to the snapshot cache.
func (c *sotwCache) CreateDeltaWatch(*cache.DeltaRequest, cache.Subscription, chan cache.DeltaResponse) (func(), error) {
	return nil, errors.New("xds: delta streams are not served by the state-of-the-world cache")
}

// sotwResponse is one stream's response: the shared encoded resources
// under the stream's request.
type sotwResponse struct {
	req *cache.Request
	tr  *typeResources
	ctx context.Context
}

// GetDiscoveryResponse returns a new message (the server sets its nonce)
// whose resources are the shared encoding, as unknown fields.
func (r *sotwResponse) GetDiscoveryResponse() (*discovery.DiscoveryResponse, error) {
	out := &discovery.DiscoveryResponse{VersionInfo: r.tr.version, TypeUrl: r.req.GetTypeUrl()}
	if len(r.tr.enc) > 0 {
		out.ProtoReflect().SetUnknown(r.tr.enc)
	}
	return out, nil
}

// GetRequest is the request answered.
func (r *sotwResponse) GetRequest() *discovery.DiscoveryRequest { return r.req }

// GetVersion is the version of the resources.
func (r *sotwResponse) GetVersion() (string, error) { return r.tr.version, nil }

// GetResponseVersion is the version of the resources.
func (r *sotwResponse) GetResponseVersion() string { return r.tr.version }

// GetReturnedResources maps the names sent to their version: a map of the
// stream's own, which its subscription changes.
func (r *sotwResponse) GetReturnedResources() map[string]string {
	m := make(map[string]string, len(r.tr.names))
	for _, name := range r.tr.names {
		m[name] = r.tr.version
	}
	return m
}

// GetContext is the context the response was made with.
func (r *sotwResponse) GetContext() context.Context { return r.ctx }
