package controlplane

import "net"

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
