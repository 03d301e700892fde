package controlplane

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/registry"
)

// The model of the property test: a few meshes, each with registry nodes
// (awsCloudMap, one with an attribute filter), a dns node, and a client node "c" whose backends are all of
// them. One proxy per mesh is connected as "c".
var (
	propMeshes = []string{"m0", "m1", "m2"}
	propNodes  = []string{"s0", "s1", "s2", "d0"}
	// propClients are the client nodes and the backends each reaches.
	propClients = map[string][]string{"c": propNodes, "c1": {"s0", "d0"}}
	ipPrefs     = []string{"", ipv4Only, ipv6Only, ipv4Preferred, ipv6Preferred}
	respTypes   = []string{"", "ENDPOINTS", dnsLoadBalancer}
)

type propMesh struct {
	ipPref       string
	s2Version    string // the attribute value s2 selects
	cmPref       string // s0's own ipPreference
	dnsPref      string
	dnsResponse  string
	dnsHostIndex int // which hostname d0 names
}

type propInstance struct{ mesh, node, id string }

type propState struct {
	rng      *rand.Rand
	meshes   map[string]*propMesh
	live     []propInstance
	addrSeq  int
	res      *fakeResolver
	hosts    []string
	lastStep string
}

func (p *propState) doc() string {
	var b strings.Builder
	for _, name := range propMeshes {
		m := p.meshes[name]
		fmt.Fprintf(&b, "---\nkind: Mesh\nname: %s\n", name)
		if m.ipPref != "" {
			fmt.Fprintf(&b, "spec: {serviceDiscovery: {ipPreference: %s}}\n", m.ipPref)
		}
		sd := map[string]string{
			"s0": fmt.Sprintf("{awsCloudMap: {namespaceName: %s.local, serviceName: s0%s}}", name, optField("ipPreference", m.cmPref)),
			"s1": fmt.Sprintf("{awsCloudMap: {namespaceName: %s.local, serviceName: s1}}", name),
			"s2": fmt.Sprintf("{awsCloudMap: {namespaceName: %s.local, serviceName: s2, attributes: [{key: version, value: %s}]}}", name, m.s2Version),
			"d0": fmt.Sprintf("{dns: {hostname: %s%s%s}}", p.hosts[m.dnsHostIndex], optField("ipPreference", m.dnsPref), optField("responseType", m.dnsResponse)),
		}
		for _, n := range propNodes {
			fmt.Fprintf(&b, "---\nkind: VirtualNode\nmesh: %s\nname: %s\nspec:\n  listeners: [{portMapping: {port: 9080, protocol: http}}]\n", name, n)
			if s, ok := sd[n]; ok {
				fmt.Fprintf(&b, "  serviceDiscovery: %s\n", s)
			}
			fmt.Fprintf(&b, "---\nkind: VirtualService\nmesh: %s\nname: %s.%s.local\nspec: {provider: {virtualNode: {virtualNodeName: %s}}}\n", name, n, name, n)
		}
		for _, client := range slices.Sorted(maps.Keys(propClients)) {
			nodes := propClients[client]
			var backends []string
			for _, n := range nodes {
				backends = append(backends, fmt.Sprintf("{virtualService: {virtualServiceName: %s.%s.local}}", n, name))
			}
			fmt.Fprintf(&b, "---\nkind: VirtualNode\nmesh: %s\nname: %s\nspec:\n  backends: [%s]\n", name, client, strings.Join(backends, ", "))
		}
	}
	return b.String()
}

func optField(k, v string) string {
	if v == "" {
		return ""
	}
	return ", " + k + ": " + v
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// nextAddr returns a fresh IPv4 address and a fresh IPv6 one, so that no
// two instances ever share an address (a proxy's load assignment lists an
// address and port once).
func (p *propState) nextAddr() (string, string) {
	p.addrSeq++
	n := p.addrSeq
	return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255), fmt.Sprintf("fd00::%x", n)
}

// step does one random thing to the control plane and says what.
func (p *propState) step(ctx context.Context, t *testing.T, cp *runningCP) {
	r := p.rng
	switch k := r.IntN(100); {
	case k < 45: // register or re-register an instance
		mesh, node := pick(r, propMeshes), pick(r, []string{"s0", "s1", "s2"})
		id := "i" + strconv.Itoa(r.IntN(4))
		v4, v6 := p.nextAddr()
		in := restv1.Instance{Address: v4, Port: 9000 + r.IntN(3), HealthStatus: pick(r, []string{"", registry.Healthy, registry.Unhealthy}), TTLSeconds: 3600}
		switch r.IntN(4) {
		case 0:
			in.Address = v6
		case 1:
			in.Attributes = map[string]string{registry.AttrIPv6: v6}
		}
		if node == "s2" {
			if in.Attributes == nil {
				in.Attributes = map[string]string{}
			}
			in.Attributes["version"] = pick(r, []string{"v1", "v2"})
		}
		if r.IntN(8) == 0 {
			in.TTLSeconds = 1 // expires on its own
		}
		if r.IntN(8) == 0 {
			// Registered under another mesh's node, in this mesh's
			// namespace and service: Cloud Map does not know meshes.
			other := pick(r, propMeshes)
			in.NamespaceName, in.ServiceName = mesh+".local", node
			mesh = other
		}
		if _, err := cp.api.Register(ctx, mesh, node, id, in); err != nil {
			t.Fatalf("register %s/%s/%s: %v", mesh, node, id, err)
		}
		p.lastStep = fmt.Sprintf("register %s/%s/%s %+v", mesh, node, id, in)
		inst := propInstance{mesh, node, id}
		if !slices.Contains(p.live, inst) {
			p.live = append(p.live, inst)
		}
	case k < 60: // deregister
		if len(p.live) == 0 {
			p.lastStep = "nothing to deregister"
			return
		}
		i := r.IntN(len(p.live))
		in := p.live[i]
		p.live = slices.Delete(p.live, i, i+1)
		err := cp.api.Deregister(ctx, in.mesh, in.node, in.id)
		var apiErr *restv1.Error
		if err != nil && !(errors.As(err, &apiErr) && apiErr.Status == 404) { // it may have expired
			t.Fatalf("deregister %v: %v", in, err)
		}
		p.lastStep = fmt.Sprintf("deregister %v", in)
	case k < 75: // a new DNS answer
		host := pick(r, p.hosts)
		var addrs []string
		for range r.IntN(4) {
			v4, v6 := p.nextAddr()
			addrs = append(addrs, pick(r, []string{v4, v6}))
		}
		p.res.set(host, addrs)
		p.lastStep = fmt.Sprintf("dns %s = %v", host, addrs)
	default: // apply a change of discovery
		m := p.meshes[pick(r, propMeshes)]
		switch r.IntN(6) {
		case 0:
			m.ipPref = pick(r, ipPrefs)
		case 1:
			m.s2Version = pick(r, []string{"v1", "v2"})
		case 2:
			m.cmPref = pick(r, ipPrefs)
		case 3:
			m.dnsPref = pick(r, ipPrefs)
		case 4:
			m.dnsResponse = pick(r, respTypes)
		default:
			m.dnsHostIndex = r.IntN(len(p.hosts))
		}
		cp.apply(t, p.doc())
		p.lastStep = fmt.Sprintf("apply %+v", *m)
	}
}

// TestEndpointsProperty runs random sequences of applies, registrations,
// deregistrations, expiries and DNS answers over several meshes, and
// checks after each step that every connected proxy's endpoints of every
// backend equal what describe lists for that backend. Set
// MESHLENS_PROPERTY_SEED to replay a failing sequence.
func TestEndpointsProperty(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MESHLENS_PROPERTY_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("MESHLENS_PROPERTY_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with MESHLENS_PROPERTY_SEED=%d)", seed, seed)
	steps := 80
	if testing.Short() {
		steps = 25
	}
	p := &propState{
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		meshes: map[string]*propMesh{},
		res:    newFakeResolver(),
		hosts:  []string{"h0.example", "h1.example"},
	}
	for _, m := range propMeshes {
		p.meshes[m] = &propMesh{s2Version: "v1"}
	}
	cp := startCP(t, Config{Resolver: p.res, DNSInterval: 200 * time.Millisecond})
	cp.apply(t, p.doc())
	clients := map[[2]string]*edsClient{}
	for _, m := range propMeshes {
		for c := range propClients {
			clients[[2]string{m, c}] = dialEDS(t, cp.s.XDSAddr(), "mesh/"+m+"/virtualNode/"+c)
		}
	}
	ctx := context.Background()
	for i := range steps {
		p.step(ctx, t, cp)
		eventually(t, 10*time.Second, func() string {
			for _, m := range propMeshes {
				for c, nodes := range propClients {
					for _, n := range nodes {
						if msg := converged(t, cp, clients[[2]string{m, c}], m, n); msg != "" {
							return fmt.Sprintf("seed %d, step %d (%s): client %s: %s", seed, i, p.lastStep, c, msg)
						}
					}
				}
			}
			return ""
		})
	}
}
