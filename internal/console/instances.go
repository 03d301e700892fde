package console

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/meshlens/meshlens/internal/metricshistory"
)

// Instance is one endpoint of a virtual node with how each proxy that
// sends to it sees it.
type Instance struct {
	Mesh        string `json:"mesh"`
	VirtualNode string `json:"virtualNode"`
	Address     string `json:"address"`
	// Health is the summary: "ejected" when some caller's outlier
	// detection ejected it, "unhealthy" when some caller's health check
	// fails or EDS says so, "pending" before a first health check, else
	// "healthy".
	Health    string     `json:"health"`
	Observers []Observer `json:"observers"`
}

// Observer is one calling proxy's view of an instance.
type Observer struct {
	Proxy       string    `json:"proxy"`
	Connected   bool      `json:"connected"`
	LastReport  time.Time `json:"lastReport"`
	Cluster     string    `json:"cluster"`
	HealthCheck string    `json:"healthCheck"` // healthy, failed, pending, none
	Ejected     bool      `json:"ejected"`
	EDSHealthy  bool      `json:"edsHealthy"`
}

// InstancesResponse is GET /v1/console/instances's body.
type InstancesResponse struct {
	Instances []Instance `json:"instances"`
	// UnreachableReplicas names the control-plane replicas that did not
	// answer: what their proxies report is missing from Instances.
	UnreachableReplicas []string `json:"unreachableReplicas,omitempty"`
}

// Instances lists the instances of the virtual node node in mesh (every
// one when empty) as the proxies that send to them report them.
func Instances(reports []metricshistory.NodeReport, mesh, node string) []Instance {
	byKey := map[[3]string]*Instance{}
	for _, r := range reports {
		for _, e := range r.Endpoints {
			if (mesh != "" && e.Mesh != mesh) || (node != "" && e.VirtualNode != node) {
				continue
			}
			k := [3]string{e.Mesh, e.VirtualNode, e.Address}
			in := byKey[k]
			if in == nil {
				in = &Instance{Mesh: e.Mesh, VirtualNode: e.VirtualNode, Address: e.Address}
				byKey[k] = in
			}
			in.Observers = append(in.Observers, Observer{Proxy: r.ID, Connected: r.Connected, LastReport: r.LastReport.UTC(),
				Cluster: e.Cluster, HealthCheck: e.HealthCheck, Ejected: e.Ejected, EDSHealthy: e.EDSHealthy})
		}
	}
	return finish(byKey)
}

// MergeInstances joins lists of instances (each replica's): the
// observers of one instance are united and its health recomputed over
// all of them.
func MergeInstances(lists ...[]Instance) []Instance {
	byKey := map[[3]string]*Instance{}
	for _, l := range lists {
		for _, i := range l {
			k := [3]string{i.Mesh, i.VirtualNode, i.Address}
			in := byKey[k]
			if in == nil {
				in = &Instance{Mesh: i.Mesh, VirtualNode: i.VirtualNode, Address: i.Address}
				byKey[k] = in
			}
			in.Observers = append(in.Observers, i.Observers...)
		}
	}
	return finish(byKey)
}

// finish works out each instance's health from its observers and sorts
// instances and observers.
func finish(byKey map[[3]string]*Instance) []Instance {
	rank := map[string]int{"healthy": 0, "pending": 1, "unhealthy": 2, "ejected": 3}
	out := make([]Instance, 0, len(byKey))
	for _, in := range byKey {
		in.Health = "healthy"
		for _, o := range in.Observers {
			h := "healthy"
			switch {
			case o.Ejected:
				h = "ejected"
			case o.HealthCheck == "failed" || !o.EDSHealthy:
				h = "unhealthy"
			case o.HealthCheck == "pending":
				h = "pending"
			}
			if rank[h] > rank[in.Health] {
				in.Health = h
			}
		}
		sort.Slice(in.Observers, func(i, j int) bool {
			return in.Observers[i].Proxy+in.Observers[i].Cluster < in.Observers[j].Proxy+in.Observers[j].Cluster
		})
		out = append(out, *in)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Mesh+"/"+a.VirtualNode+"/"+a.Address < b.Mesh+"/"+b.VirtualNode+"/"+b.Address
	})
	return out
}

func (h *Handler) handleInstances(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	mesh, node := v.Get("mesh"), v.Get("node")
	if len(mesh) > 512 || len(node) > 512 {
		badRequest(w, fmt.Errorf("mesh, node: longer than 512 bytes"))
		return
	}
	var reports []metricshistory.NodeReport
	if h.Nodes != nil {
		reports = h.Nodes()
	}
	out := InstancesResponse{Instances: Instances(reports, mesh, node)}
	if h.PeerInstances != nil && v.Get("scope") != "local" {
		lists, unreachable, err := h.PeerInstances(r)
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": http.StatusServiceUnavailable, "code": "ReplicasUnavailable", "message": err.Error()})
			return
		}
		out.Instances = MergeInstances(append(lists, out.Instances)...)
		out.UnreachableReplicas = unreachable
	}
	writeJSON(w, http.StatusOK, out)
}
