package console

import (
	"fmt"
	"time"

	"github.com/meshlens/meshlens/internal/metricshistory"
)

// fillSynthetic records slots slots of traffic on edges edges between
// nodes nodes (each edge seen by both reporters, with latencies and some
// errors).
func fillSynthetic(hist *metricshistory.Store, now time.Time, nodes, edges, slots int) {
	buckets := new([20]uint64)
	buckets[3], buckets[4], buckets[6] = 40, 50, 10
	for s := range slots {
		t := now.Add(-time.Duration(slots-1-s) * 10 * time.Second)
		var batch []metricshistory.Sample
		for e := range edges {
			from, to := fmt.Sprintf("n%d", e%nodes), fmt.Sprintf("n%d", (e*7+1)%nodes)
			for _, rep := range []string{"source", "destination"} {
				l := metricshistory.Labels{Reporter: rep, SourceMesh: "m", SourceKind: "virtualNode", SourceWorkload: from,
					DestinationMesh: "m", DestinationService: fmt.Sprintf("%s-e%d.m.local", to, e), DestinationWorkload: to, Route: "r", Protocol: "http"}
				batch = append(batch, metricshistory.Sample{Labels: l, Requests: 100, Errors: 1, Codes: map[string]uint64{"503": 1}, Buckets: buckets})
			}
		}
		hist.Add(t, batch)
	}
}
