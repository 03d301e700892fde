package controlplane

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/meshlens/meshlens/internal/tracestore"
)

// traceDirName is the trace store's folder under the data dir.
const traceDirName = "traces"

// openTraceStore opens the built-in trace store: in memory, and on disk
// under the data dir when a disk budget is given.
func openTraceStore(cfg Config) (*tracestore.Store, error) {
	opts := cfg.TraceStore
	if opts.Logger == nil {
		opts.Logger = cfg.Logger
	}
	if opts.MaxDiskBytes > 0 && opts.Dir == "" {
		opts.Dir = filepath.Join(cfg.DataDir, traceDirName)
	}
	s, err := tracestore.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open trace store: %w", err)
	}
	return s, nil
}

// builtinCollector is where proxies send spans for the builtin tracing
// provider: the control plane's gRPC address, which serves OTLP beside
// xDS. It is empty, and builtin tracing off, when OTLP is disabled or
// the address is a wildcard that a proxy cannot dial and none is
// advertised; the log says so.
func (s *Server) builtinCollector() string {
	if s.cfg.DisableOTLP {
		return ""
	}
	if s.cfg.OTLPAdvertiseAddr != "" {
		return s.cfg.OTLPAdvertiseAddr
	}
	addr := s.xdsLn.Addr().(*net.TCPAddr)
	if addr.IP.IsUnspecified() {
		s.log.Warn("builtin tracing is off: the xDS address is a wildcard proxies cannot send spans to; set --otlp-advertise-addr",
			"xds", addr.String())
		return ""
	}
	return addr.String()
}
