package controlplane

import (
	"sort"

	"github.com/meshlens/meshlens/internal/apiclient"
)

// proxies lists the connected data planes, narrowed to one virtual node
// or gateway when kind, mesh and name are given.
func (s *Server) proxies(kind, mesh, name string) []apiclient.Proxy {
	out := []apiclient.Proxy{}
	for _, n := range s.xds.Nodes() {
		if kind != "" && (n.Kind != kind || n.Mesh != mesh || n.Name != name) {
			continue
		}
		p := apiclient.Proxy{
			ID: n.ID, Mesh: n.Mesh, Kind: n.Kind, Name: n.Name,
			Proxyless: n.Flavour == "proxyless",
			Streams:   len(n.Streams), Nacks: n.NACKs, Acked: map[string]string{},
		}
		if n.LastNACK != nil {
			p.LastNack = n.LastNACK.Error
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
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
