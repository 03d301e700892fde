// Package statsd pushes a stats.Snapshot to a statsD or DogStatsD agent
// over UDP or a Unix datagram socket, as Envoy's statsd and dog_statsd
// sinks do, so that App Mesh's ENABLE_ENVOY_DOG_STATSD setups (a Datadog
// or CloudWatch agent beside the proxy) keep receiving the same lines.
//
// Lines are Envoy's: <prefix>.<name>:<value>|<type>, the prefix "envoy"
// unless configured. Plain statsD uses the full stat name
// (envoy.cluster.cds_egress_x.upstream_rq_200:3|c); DogStatsD uses the
// tag-extracted name and appends the tags
// (envoy.cluster.upstream_rq:3|c|#envoy.response_code:200,envoy.cluster_name:cds_egress_x).
// Counters are sent as the increase since the previous flush (|c), gauges
// as their value (|g), both only once used, as Envoy does.
//
// Histograms differ from Envoy in one respect, by design: Envoy sends
// every sample as it is recorded, which would put a socket write on the
// request path. Here the request path only bumps a bin, and each flush
// sends, per histogram, one timer line (|ms, whatever the unit, as Envoy)
// per non-empty bin of the interval: the bin's representative value
// (exact below 100, else the bin's midpoint, within 5%), with a sample
// rate of 1/count when the bin holds count samples
// (envoy.cluster.upstream_rq_time:12|ms|@0.25 stands for 4 requests of
// 12 ms). Agents scale counts by the inverse rate, so rates, counts and
// percentiles come out right to a bin's precision, and the number of
// lines per histogram is bounded by the bins in use rather than by the
// traffic.
//
// Several lines are packed into one datagram, newline-separated, up to
// MaxDatagramSize bytes; a line is never split, and a line longer than
// the limit goes alone in its own datagram. (Envoy sends one line per
// datagram unless max_bytes_per_datagram is set; 1432 bytes is the
// payload Datadog recommends for UDP on a 1500-byte MTU.)
package statsd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/meshlens/meshlens/internal/stats"
)

// Environment variables App Mesh's image read for its DogStatsD sink.
const (
	EnvEnableDogStatsD = "ENABLE_ENVOY_DOG_STATSD"
	EnvAddress         = "STATSD_ADDRESS"
	EnvPort            = "STATSD_PORT"
	EnvSocketPath      = "STATSD_SOCKET_PATH"
)

// Defaults.
const (
	DefaultPrefix           = "envoy"
	DefaultAddress          = "127.0.0.1"
	DefaultPort             = 8125
	DefaultUDPDatagram      = 1432
	DefaultUnixgramDatagram = 8192 // what DogStatsD recommends for Unix sockets
)

// Config describes one sink.
type Config struct {
	// Network is "udp" (Address is host:port) or "unixgram" (Address is
	// a socket path).
	Network string
	Address string
	// Prefix starts every name; empty means DefaultPrefix, as in Envoy.
	Prefix string
	// Tagged selects DogStatsD: tag-extracted names and |#tags.
	Tagged bool
	// MaxDatagramSize bounds a datagram's payload; 0 means 1432 for UDP
	// and 8192 for a Unix socket.
	MaxDatagramSize int
}

// ConfigFromEnv reads App Mesh's DogStatsD variables: the sink is
// enabled by ENABLE_ENVOY_DOG_STATSD; STATSD_SOCKET_PATH, when set, wins
// over STATSD_ADDRESS (default 127.0.0.1) and STATSD_PORT (default 8125).
func ConfigFromEnv(getenv func(string) string) (cfg Config, enabled bool, err error) {
	enabled, err = stats.ParseTruthy(getenv(EnvEnableDogStatsD))
	if err != nil {
		return Config{}, false, fmt.Errorf("%s: %w", EnvEnableDogStatsD, err)
	}
	if !enabled {
		return Config{}, false, nil
	}
	cfg.Tagged = true
	if p := getenv(EnvSocketPath); p != "" {
		cfg.Network, cfg.Address = "unixgram", p
		return cfg, true, nil
	}
	host := getenv(EnvAddress)
	if host == "" {
		host = DefaultAddress
	}
	port := DefaultPort
	if p := getenv(EnvPort); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			return Config{}, false, fmt.Errorf("%s: not a port: %q", EnvPort, p)
		}
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if h, _, err := net.SplitHostPort(addr); err != nil || h != host || strings.ContainsAny(host, " \t\r\n/") {
		return Config{}, false, fmt.Errorf("%s: not a host name or IP address: %q", EnvAddress, host)
	}
	cfg.Network, cfg.Address = "udp", addr
	return cfg, true, nil
}

// datagramWriter sends one datagram per call.
type datagramWriter interface {
	Write(p []byte) (int, error)
	Close() error
}

// Sink is a statsD or DogStatsD sink. It implements stats.Sink.
type Sink struct {
	cfg Config
	max int

	mu   sync.Mutex
	conn datagramWriter
	dial func() (datagramWriter, error)
}

// New returns a sink for cfg. A UDP destination is resolved now; a Unix
// socket is (re)connected at each flush until it exists, since the agent
// may start after the proxy.
func New(cfg Config) (*Sink, error) {
	s := &Sink{cfg: cfg}
	switch cfg.Network {
	case "udp", "udp4", "udp6":
		raddr, err := net.ResolveUDPAddr(cfg.Network, cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("statsd sink: resolve %s: %w", cfg.Address, err)
		}
		s.dial = func() (datagramWriter, error) { return newUDPWriter(raddr) }
		s.max = DefaultUDPDatagram
	case "unixgram":
		s.dial = func() (datagramWriter, error) { return net.Dial("unixgram", cfg.Address) }
		s.max = DefaultUnixgramDatagram
	default:
		return nil, fmt.Errorf("statsd sink: unsupported network %q", cfg.Network)
	}
	if cfg.MaxDatagramSize > 0 {
		s.max = cfg.MaxDatagramSize
	}
	return s, nil
}

// udpWriter sends unconnected datagrams, as Envoy does, so that an agent
// that is not listening yet does not turn into ECONNREFUSED errors.
type udpWriter struct {
	pc    *net.UDPConn
	raddr *net.UDPAddr
}

func newUDPWriter(raddr *net.UDPAddr) (*udpWriter, error) {
	network := "udp4"
	if raddr.IP.To4() == nil && raddr.IP != nil {
		network = "udp6"
	}
	pc, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, err
	}
	return &udpWriter{pc: pc, raddr: raddr}, nil
}

func (u *udpWriter) Write(p []byte) (int, error) { return u.pc.WriteToUDP(p, u.raddr) }
func (u *udpWriter) Close() error                { return u.pc.Close() }

// Close releases the socket.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// Flush sends the snapshot's lines.
func (s *Sink) Flush(ctx context.Context, snap *stats.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		c, err := s.dial()
		if err != nil {
			return fmt.Errorf("statsd sink: connect %s %s: %w", s.cfg.Network, s.cfg.Address, err)
		}
		s.conn = c
	}
	var errs []error
	send := func(b []byte) {
		if _, err := s.conn.Write(b); err != nil && len(errs) < 3 {
			errs = append(errs, err)
		}
	}
	pack(Lines(s.cfg, snap), s.max, send)
	if len(errs) > 0 {
		// Reconnect next time: the socket (a Unix one above all) may be
		// gone with the agent.
		_ = s.conn.Close()
		s.conn = nil
		return fmt.Errorf("statsd sink: send to %s: %w", s.cfg.Address, errors.Join(errs...))
	}
	return ctx.Err()
}

// pack groups lines into datagrams of at most max bytes, newline
// separated, calling send for each; a longer line is sent alone.
func pack(lines []string, max int, send func([]byte)) {
	buf := make([]byte, 0, max)
	for _, l := range lines {
		// A line that does not fit ends the datagram; one longer than
		// max then travels alone.
		if len(buf) > 0 && len(buf)+1+len(l) > max {
			send(buf)
			buf = buf[:0]
		}
		if len(buf) > 0 {
			buf = append(buf, '\n')
		}
		buf = append(buf, l...)
	}
	if len(buf) > 0 {
		send(buf)
	}
}

// Lines renders a snapshot as statsD (or, with cfg.Tagged, DogStatsD)
// lines: counters, gauges, then histograms, each in snapshot order.
func Lines(cfg Config, snap *stats.Snapshot) []string {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	var out []string
	var b strings.Builder
	line := func(m *stats.Metric, value, typ, rate string) {
		b.Reset()
		b.WriteString(prefix)
		b.WriteByte('.')
		if cfg.Tagged {
			b.WriteString(cleanName(m.TagExtractedName))
		} else {
			b.WriteString(cleanName(m.Name))
		}
		b.WriteByte(':')
		b.WriteString(value)
		b.WriteByte('|')
		b.WriteString(typ)
		if rate != "" {
			b.WriteString("|@")
			b.WriteString(rate)
		}
		if cfg.Tagged && len(m.Tags) > 0 {
			b.WriteString("|#")
			for i, t := range m.Tags {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(cleanTag(t.Name))
				b.WriteByte(':')
				b.WriteString(cleanTag(t.Value))
			}
		}
		out = append(out, b.String())
	}
	for _, c := range snap.Counters {
		line(c.Metric, strconv.FormatUint(c.Delta, 10), "c", "")
	}
	for _, g := range snap.Gauges {
		line(g.Metric, strconv.FormatInt(g.Value, 10), "g", "")
	}
	for _, h := range snap.Histograms {
		for _, bin := range h.Interval.Bins {
			rate := ""
			if bin.Count > 1 {
				rate = strconv.FormatFloat(1/float64(bin.Count), 'g', -1, 64)
			}
			line(h.Metric, strconv.FormatFloat(bin.Representative(), 'f', -1, 64), "ms", rate)
		}
	}
	return out
}

// cleanName replaces the characters that delimit a statsD line.
var nameCleaner = strings.NewReplacer(":", "_", "|", "_", "@", "_", "\n", "_")

func cleanName(s string) string { return nameCleaner.Replace(s) }

// cleanTag also replaces the DogStatsD tag separator.
var tagCleaner = strings.NewReplacer(",", "_", "|", "_", "\n", "_", "#", "_")

func cleanTag(s string) string { return tagCleaner.Replace(s) }
