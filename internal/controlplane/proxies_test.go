package controlplane

import (
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/xds"
)

func TestProxySyncState(t *testing.T) {
	t.Parallel()
	cds, lds := resource.ClusterType, resource.ListenerType
	latest := map[string]string{cds: "c2", lds: "l2", resource.EndpointType: "e1", resource.RouteType: "r1"}
	for _, tc := range []struct {
		name    string
		streams []xds.StreamStatus
		nack    *xds.NACK
		want    map[string]string
		inSync  bool
	}{
		{"synced", []xds.StreamStatus{{ID: 1, Sent: map[string]string{cds: "c2", lds: "l2"}, Acked: map[string]string{cds: "c2", lds: "l2"}}}, nil,
			map[string]string{cds: restv1.SyncSynced, lds: restv1.SyncSynced}, true},
		{"sent, not yet acked", []xds.StreamStatus{{ID: 1, Sent: map[string]string{cds: "c2", lds: "l2"}, Acked: map[string]string{cds: "c1", lds: "l2"}}}, nil,
			map[string]string{cds: restv1.SyncStale, lds: restv1.SyncSynced}, false},
		{"an older version sent", []xds.StreamStatus{{ID: 1, Sent: map[string]string{cds: "c1"}, Acked: map[string]string{cds: "c1"}}}, nil,
			map[string]string{cds: restv1.SyncStale, lds: restv1.SyncNotSent}, false},
		{"rejected", []xds.StreamStatus{{ID: 1, Sent: map[string]string{lds: "l2"}, Acked: map[string]string{lds: "l1"}}},
			&xds.NACK{TypeURL: lds, Version: "l2", Stream: 1, Error: "bind: address already in use"},
			map[string]string{lds: restv1.SyncNACKed}, false},
		{"an old NACK, since accepted", []xds.StreamStatus{{ID: 1, Sent: map[string]string{lds: "l2"}, Acked: map[string]string{lds: "l2"}}},
			&xds.NACK{TypeURL: lds, Version: "l1", Stream: 1, Error: "old"},
			map[string]string{lds: restv1.SyncSynced}, true},
		{"the most behind stream counts", []xds.StreamStatus{
			{ID: 1, Sent: map[string]string{cds: "c2"}, Acked: map[string]string{cds: "c2"}},
			{ID: 2, Sent: map[string]string{cds: "c2"}, Acked: map[string]string{}},
		}, nil, map[string]string{cds: restv1.SyncStale}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := proxyOf(xds.NodeStatus{ID: "mesh/m/virtualNode/n", Flavour: "envoy", Versions: latest, Streams: tc.streams, LastNACK: tc.nack})
			for typ, want := range tc.want {
				if p.Sync[typ] != want {
					t.Errorf("%s: %q, want %q", typ, p.Sync[typ], want)
				}
			}
			if p.InSync != tc.inSync {
				t.Errorf("in sync %v, want %v (%v)", p.InSync, tc.inSync, p.Sync)
			}
			if tc.nack != nil && (p.LastNack != tc.nack.Error || p.LastNackType != tc.nack.TypeURL || p.LastNackVersion != tc.nack.Version) {
				t.Errorf("last NACK %q %q %q", p.LastNack, p.LastNackType, p.LastNackVersion)
			}
		})
	}
}
