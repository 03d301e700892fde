package hcm

import (
	"net/http"
	"strings"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/tap"
)

// tapRequest offers a finished request to the open taps ts (finish calls
// it only while some tap is open).
func tapRequest(ts *tap.Set, r *http.Request, ex *Exchange, cc *ChainConfig, ci *Conn, d time.Duration) {
	if !ts.Wants(r.Method, r.Host, ex.Req.path) {
		return
	}
	ev := tap.Event{
		Time: ex.start, Direction: strings.ToLower(cc.Dir.String()),
		Method: r.Method, Authority: r.Host, Path: ex.Req.path,
		Status: ex.Status, LatencyMs: float64(d.Microseconds()) / 1000,
	}
	if ex.Flags != 0 {
		ev.ResponseFlags = ex.Flags.String()
	}
	if ex.edge != nil {
		ev.Source, ev.Destination = ex.edge.Caller(), ex.edge.Service()
	}
	if ev.Source == "" && ci != nil && ci.Info.Remote.IsValid() {
		ev.Source = ci.Info.Remote.String()
	}
	if ex.route != nil {
		ev.Route = ex.route.Name
		if ev.Destination == "" {
			ev.Destination = ex.route.Meta.VirtualService
		}
	}
	if ev.Route == "" && ex.edge != nil {
		// An inbound route has no name: the caller's route says which
		// route sent the request.
		ev.Route = ex.edge.Route()
	}
	if ex.view != nil {
		ev.UpstreamCluster = ex.view.Cluster.Name
	}
	if ex.Endpoint != nil {
		ev.UpstreamHost = ex.Endpoint.Addr
	}
	ts.Publish(ev, r.Header)
}
