package export

import "github.com/meshlens/meshlens/internal/stats"

// The proxy's counters plug into Stats as they are.
var _ Counter = (*stats.Counter)(nil)
