package hcm

import (
	"net/http"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// runFilters runs the request phase of the HTTP filter chain once the
// route is known (package chain: CORS, fault, rate limit, gRPC-Web). It
// reports whether the request goes on to the router; when it does not,
// it has been answered locally, or the client left during a fault delay.
// The response phase runs in the router (FilterResponse), on the upstream
// response's head.
func runFilters(w http.ResponseWriter, r *http.Request, ex *Exchange, f *chain.Chain, route *table.Route) bool {
	ex.filters = f
	rep, err := f.Request(r.Context(), r, route.Filters, &ex.filt, w.Header())
	ex.Flags |= rep.Flags
	switch {
	case err != nil:
		ex.Flags |= accesslog.DownstreamConnectionTermination
		return false
	case rep.Status != 0:
		ex.Reply(w, rep.Status, rep.Body, 0)
		return false
	}
	return true
}
