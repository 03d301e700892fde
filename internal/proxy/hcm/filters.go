package hcm

import (
	"net/http"

	"github.com/meshlens/meshlens/internal/accesslog"
	"github.com/meshlens/meshlens/internal/proxy/filters/chain"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// runFilters runs the request phase of the HTTP filter chain once the
// route is known (package chain: CORS, fault, rate limit, gRPC-Web);
// route is nil when no route matched. It reports whether the request
// goes on (to the router, or to the local reply routing decided); when it
// does not, it has been answered locally, or the client left during a
// fault delay. The response phase runs on the upstream response's head
// (FilterResponse, in the router) or on any later local reply (Reply).
func runFilters(r *http.Request, ex *Exchange, f *chain.Chain, route *table.Route) bool {
	ex.filters = f
	var rt *chain.Route
	if route != nil {
		rt = route.Filters
	}
	rep, err := f.Request(r.Context(), r, rt, &ex.filt, ex.ds.Header())
	ex.Flags |= rep.Flags
	switch {
	case err != nil:
		ex.Flags |= accesslog.DownstreamConnectionTermination
		return false
	case rep.Status != 0:
		// Shaped by the chain already, through the filters before the
		// one that answered.
		ex.reply(rep.Status, rep.Body, 0)
		return false
	}
	return true
}
