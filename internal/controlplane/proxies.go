package controlplane

import (
	"sort"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/xds"
)

// proxies lists the connected data planes, narrowed to one virtual node
// or gateway when kind, mesh and name are given.
func (s *Server) proxies(kind, mesh, name string) []restv1.Proxy {
	out := []restv1.Proxy{}
	for _, n := range s.xds.Nodes() {
		if kind != "" && (n.Kind != kind || n.Mesh != mesh || n.Name != name) {
			continue
		}
		out = append(out, proxyOf(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// proxyOf is the API's view of one data plane: what each of its streams
// accepted against the latest version of its view.
func proxyOf(n xds.NodeStatus) restv1.Proxy {
	p := restv1.Proxy{
		ID: n.ID, Mesh: n.Mesh, Kind: n.Kind, Name: n.Name,
		Flavour: n.Flavour, Proxyless: n.Flavour == xds.FlavourProxyless.String(),
		Streams: len(n.Streams), Nacks: n.NACKs, Acked: map[string]string{},
		Latest: map[string]string{}, Sync: map[string]string{}, InSync: true,
	}
	if n.LastNACK != nil {
		p.LastNack, p.LastNackType, p.LastNackVersion, p.LastNackAt = n.LastNACK.Error, n.LastNACK.TypeURL, n.LastNACK.Version, n.LastNACK.At
	}
	for typ, v := range n.Versions {
		p.Latest[typ] = v
		p.Sync[typ] = restv1.SyncNotSent
	}
	for _, st := range n.Streams {
		if p.UserAgent == "" {
			p.UserAgent = st.UserAgent
		}
		if p.ConnectedAt.IsZero() || st.Opened.Before(p.ConnectedAt) {
			p.ConnectedAt = st.Opened
		}
		for typ, v := range st.Acked {
			p.Acked[typ] = v
		}
		// A node's streams share one view: a type is as far behind as
		// its most behind stream.
		for typ, sent := range st.Sent {
			state := syncState(n, st, typ, sent)
			if syncRank[state] > syncRank[p.Sync[typ]] {
				p.Sync[typ] = state
			}
		}
	}
	for _, state := range p.Sync {
		if state == restv1.SyncStale || state == restv1.SyncNACKed {
			p.InSync = false
		}
	}
	return p
}

// syncRank orders the states from in sync to most behind.
var syncRank = map[string]int{
	"": 0, restv1.SyncNotSent: 1, restv1.SyncSynced: 2, restv1.SyncStale: 3, restv1.SyncNACKed: 4,
}

// syncState is one stream's state for type typ, whose last response
// carried version sent.
func syncState(n xds.NodeStatus, st xds.StreamStatus, typ, sent string) string {
	acked, latest := st.Acked[typ], n.Versions[typ]
	switch {
	case acked == sent && sent == latest:
		return restv1.SyncSynced
	case acked != sent && n.LastNACK != nil && n.LastNACK.Stream == st.ID && n.LastNACK.TypeURL == typ && n.LastNACK.Version == sent:
		return restv1.SyncNACKed
	default:
		return restv1.SyncStale
	}
}
