package console

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/meshlens/meshlens/internal/metricshistory"
)

// Defaults and bounds of the query parameters.
const (
	DefaultWindow = time.Minute
	DefaultStep   = 10 * time.Second
	DefaultRange  = 15 * time.Minute
	DefaultTop    = 10
	MaxTop        = 100
)

// metricsParams are GET /v1/console/metrics's parameters.
type metricsParams struct {
	Kind   string // node, service, route or edge
	Mesh   string
	Name   string // the node, service or route; the edge's destination service
	Source string // the edge's source node
	Range  time.Duration
	Step   time.Duration
}

// parseDuration reads a parameter as a Go duration ("5m") or whole
// seconds ("300"), within (0, max].
func parseDuration(v url.Values, key string, def, max time.Duration) (time.Duration, error) {
	s := v.Get(key)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseUint(s, 10, 32)
		if nerr != nil {
			return 0, fmt.Errorf("%s %q: want a duration such as 5m or a number of seconds", key, s)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 || d > max {
		return 0, fmt.Errorf("%s %q: want more than 0 and at most %s", key, s, max)
	}
	return d, nil
}

func parseMetricsParams(v url.Values) (metricsParams, error) {
	p := metricsParams{Kind: v.Get("kind"), Mesh: v.Get("mesh"), Name: v.Get("name"), Source: v.Get("source")}
	switch p.Kind {
	case "node", "service", "route":
	case "edge":
		if p.Source == "" {
			return p, fmt.Errorf("source: is required for kind=edge (the calling node's name)")
		}
	case "":
		return p, fmt.Errorf("kind: is required (node, service, route or edge)")
	default:
		return p, fmt.Errorf("kind %q: want node, service, route or edge", p.Kind)
	}
	if p.Name == "" {
		return p, fmt.Errorf("name: is required")
	}
	for _, kv := range [][2]string{{"mesh", p.Mesh}, {"name", p.Name}, {"source", p.Source}} {
		if len(kv[1]) > 512 {
			return p, fmt.Errorf("%s: longer than 512 bytes", kv[0])
		}
	}
	var err error
	if p.Range, err = parseDuration(v, "window", DefaultRange, metricshistory.MaxWindow); err != nil {
		return p, err
	}
	if p.Step, err = parseDuration(v, "step", DefaultStep, time.Hour); err != nil {
		return p, err
	}
	if p.Range/p.Step > metricshistory.MaxPoints {
		return p, fmt.Errorf("step %s: gives more than %d points over window %s", p.Step, metricshistory.MaxPoints, p.Range)
	}
	return p, nil
}

// selector is the series a metrics query reads: a node's and a
// service's traffic as their own proxies (the called side) count it, so
// that callers from outside the mesh are in; a route's and an edge's as
// the calling side counts it, since the caller's proxy picks the route.
func (p metricsParams) selector() metricshistory.Labels {
	var l metricshistory.Labels
	switch p.Kind {
	case "node":
		l = metricshistory.Labels{Reporter: "destination", DestinationMesh: p.Mesh, DestinationWorkload: p.Name}
	case "service":
		l = metricshistory.Labels{Reporter: "destination", DestinationMesh: p.Mesh, DestinationService: p.Name}
	case "route":
		l = metricshistory.Labels{Reporter: "source", SourceMesh: p.Mesh, Route: p.Name}
	case "edge":
		l = metricshistory.Labels{Reporter: "source", SourceMesh: p.Mesh, SourceWorkload: p.Source, DestinationService: p.Name}
	}
	return l
}
