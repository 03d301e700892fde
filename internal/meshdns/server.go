package meshdns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/meshlens/meshlens/internal/stats"
)

// Defaults of Config.
const (
	DefaultResolvConf  = "/etc/resolv.conf"
	DefaultTimeout     = 2 * time.Second
	DefaultMaxInFlight = 256
	DefaultMaxTCPConns = 64
	DefaultTCPIdle     = 10 * time.Second
	// DefaultTTL is the TTL of mesh answers: short, so that an
	// application notices a name that left the mesh within a minute.
	DefaultTTL = 30
	// maxUpstreams is how many resolvers are tried, as glibc's MAXNS.
	maxUpstreams = 3
	// maxUDPResponse bounds a response over UDP whatever the client's
	// EDNS buffer claims; beyond it the answer is truncated and the
	// client retries over TCP.
	maxUDPResponse = 4096
)

// Config configures a Server. Zero fields take the defaults above.
type Config struct {
	// Addr is where the server listens, for UDP and TCP alike
	// (127.0.0.1:15053). Port 0 picks one free for both.
	Addr string
	// Upstreams are the resolvers (host:port) non-mesh queries go to;
	// empty reads the nameservers of ResolvConf.
	Upstreams []string
	// ResolvConf is the resolver configuration read when Upstreams is
	// empty; default /etc/resolv.conf.
	ResolvConf string
	// Timeout bounds one exchange with one upstream.
	Timeout time.Duration
	// MaxInFlight bounds the UDP queries being answered at once; more
	// are dropped (and counted), as a resolver under load does: the
	// client retries.
	MaxInFlight int
	// MaxTCPConns bounds the TCP connections open at once; TCPIdle
	// closes one that sends no complete query for that long.
	MaxTCPConns int
	TCPIdle     time.Duration
	// TTL of mesh answers, in seconds.
	TTL uint32
	// Stats, when set, receives the server's counters (see counters).
	Stats *stats.Scope
	// Log receives operational logs; nil is slog.Default().
	Log *slog.Logger
}

// counters are the server's stats, under the scope Config.Stats:
// queries (decoded), local_answers (answered from the mesh table),
// forwarded (answered by an upstream), upstream_failures (no upstream
// answered: SERVFAIL), malformed (not a query: FORMERR or nothing), and
// dropped (over MaxInFlight or MaxTCPConns).
type counters struct {
	queries, local, forwarded, upstreamFailures, malformed, dropped *stats.Counter
}

// Server answers DNS over UDP and TCP on one address.
type Server struct {
	cfg       Config
	upstreams []string
	table     atomic.Pointer[Table]
	udp       net.PacketConn
	tcp       net.Listener
	sem       chan struct{}
	tcpSem    chan struct{}
	st        counters
	log       *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Listen binds cfg.Addr for UDP and TCP and reads the upstream resolvers.
// The server answers nothing from the mesh until SetTable.
func Listen(cfg Config) (*Server, error) {
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = DefaultResolvConf
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = DefaultMaxTCPConns
	}
	if cfg.TCPIdle <= 0 {
		cfg.TCPIdle = DefaultTCPIdle
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Log, sem: make(chan struct{}, cfg.MaxInFlight), tcpSem: make(chan struct{}, cfg.MaxTCPConns), conns: map[net.Conn]struct{}{}}
	if sc := cfg.Stats; sc != nil {
		s.st = counters{sc.Counter("queries"), sc.Counter("local_answers"), sc.Counter("forwarded"), sc.Counter("upstream_failures"), sc.Counter("malformed"), sc.Counter("dropped")}
	}
	ups, err := upstreams(cfg)
	if err != nil {
		return nil, err
	}
	s.upstreams = ups
	if len(ups) == 0 {
		s.log.Warn("dns: no upstream resolver; names outside the mesh get SERVFAIL", "resolv_conf", cfg.ResolvConf)
	}
	if err := s.bind(cfg.Addr); err != nil {
		return nil, err
	}
	return s, nil
}

// upstreams are Config.Upstreams, or the nameservers of ResolvConf on
// their port: at most maxUpstreams.
func upstreams(cfg Config) ([]string, error) {
	var out []string
	if len(cfg.Upstreams) > 0 {
		for _, u := range cfg.Upstreams {
			if _, _, err := net.SplitHostPort(u); err != nil {
				return nil, fmt.Errorf("dns upstream %q: want HOST:PORT: %w", u, err)
			}
			out = append(out, u)
		}
	} else {
		rc, err := dns.ClientConfigFromFile(cfg.ResolvConf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return nil, fmt.Errorf("dns upstreams from %s: %w", cfg.ResolvConf, err)
		}
		for _, srv := range rc.Servers {
			out = append(out, net.JoinHostPort(srv, rc.Port))
		}
	}
	if len(out) > maxUpstreams {
		out = out[:maxUpstreams]
	}
	return out, nil
}

// bind opens UDP then TCP on the same port; when addr's port is 0 and
// TCP cannot have the port UDP got, it tries again with another.
func (s *Server) bind(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("dns address %q: %w", addr, err)
	}
	for attempt := 0; ; attempt++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
		_, got, _ := net.SplitHostPort(udp.LocalAddr().String())
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, got))
		if err == nil {
			s.udp, s.tcp = udp, tcp
			return nil
		}
		udp.Close()
		if port != "0" || attempt == 10 {
			return fmt.Errorf("dns: listen tcp %s: %w", net.JoinHostPort(host, got), err)
		}
	}
}

// Addr is the address the server listens on (UDP and TCP).
func (s *Server) Addr() string { return s.udp.LocalAddr().String() }

// SetTable replaces the mesh names the server answers.
func (s *Server) SetTable(t *Table) { s.table.Store(t) }

// Table is the current mesh names.
func (s *Server) Table() *Table { return s.table.Load() }

// Upstreams are the resolvers non-mesh queries go to.
func (s *Server) Upstreams() []string { return s.upstreams }

// Serve answers queries until ctx ends, then closes its sockets and
// waits for the queries in flight.
func (s *Server) Serve(ctx context.Context) error {
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.serveUDP(ctx) }()
	go func() { defer s.wg.Done(); s.serveTCP(ctx) }()
	<-ctx.Done()
	s.udp.Close()
	s.tcp.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) serveUDP(ctx context.Context) {
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("dns: udp read", "err", err)
				continue
			}
			return
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.st.dropped.Inc()
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			if resp := s.answer(ctx, pkt, "udp"); resp != nil {
				s.udp.WriteTo(resp, from)
			}
		}()
	}
}

func (s *Server) serveTCP(ctx context.Context) {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("dns: tcp accept", "err", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return
		}
		select {
		case s.tcpSem <- struct{}{}:
		default:
			s.st.dropped.Inc()
			c.Close()
			continue
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.tcpSem }()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serveConn(ctx, c)
		}()
	}
}

// serveConn answers the queries of one TCP connection, each framed by a
// two-byte length (RFC 1035 4.2.2), one after the other.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	var lenBuf [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdle))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		if n > MaxQuerySize || n < headerSize {
			s.st.malformed.Inc()
			return
		}
		pkt := make([]byte, n)
		if _, err := io.ReadFull(c, pkt); err != nil {
			return
		}
		resp := s.answer(ctx, pkt, "tcp")
		if resp == nil {
			return
		}
		out := make([]byte, 2+len(resp))
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		copy(out[2:], resp)
		c.SetWriteDeadline(time.Now().Add(s.cfg.TCPIdle))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// answer returns the response to one query packet, nil for none.
func (s *Server) answer(ctx context.Context, pkt []byte, network string) []byte {
	m, id, hdrOK, err := decodeQuery(pkt)
	if err != nil {
		s.st.malformed.Inc()
		if !hdrOK {
			return nil
		}
		r := new(dns.Msg)
		r.Id, r.Response = id, true
		r.Rcode = dns.RcodeFormatError
		if errors.Is(err, errOpcode) {
			r.Rcode = dns.RcodeNotImplemented
		}
		b, _ := r.Pack()
		return b
	}
	s.st.queries.Inc()
	var r *dns.Msg
	if local := s.local(m); local != nil {
		s.st.local.Inc()
		r = local
	} else {
		r = s.forward(ctx, m, network)
	}
	if network == "udp" {
		if size := udpSize(m); r.Len() > size {
			r.Truncate(size)
		}
	}
	b, err := r.Pack()
	if err != nil {
		s.log.Debug("dns: pack response", "name", m.Question[0].Name, "err", err)
		fail := new(dns.Msg).SetRcode(m, dns.RcodeServerFailure)
		b, _ = fail.Pack()
	}
	return b
}

// local answers a query for a mesh name; nil when the name is not one.
// A mesh name has only an A record: other types get an empty answer
// (NODATA), never a forward, so that a resolver asking for A and AAAA at
// once does not take the upstream's NXDOMAIN for the name's.
func (s *Server) local(m *dns.Msg) *dns.Msg {
	q := m.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return nil
	}
	addr, ok := s.table.Load().Lookup(q.Name)
	if !ok {
		return nil
	}
	r := new(dns.Msg).SetReply(m)
	r.Authoritative, r.RecursionAvailable = true, true
	if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
		r.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: s.cfg.TTL},
			A:   addr.AsSlice(),
		}}
	}
	return r
}

// forward asks the upstreams in order, each bounded by the timeout, and
// returns the first answer; SERVFAIL when none answers. An upstream's UDP
// answer is read whole up to maxUDPResponse even when it exceeds what
// the client takes: answer truncates it to the client's size.
func (s *Server) forward(ctx context.Context, m *dns.Msg, network string) *dns.Msg {
	for _, up := range s.upstreams {
		c := &dns.Client{Net: network, Timeout: s.cfg.Timeout, UDPSize: maxUDPResponse}
		actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		r, _, err := c.ExchangeContext(actx, m, up)
		cancel()
		if err != nil || r == nil {
			s.log.Debug("dns: upstream", "upstream", up, "name", m.Question[0].Name, "err", err)
			continue
		}
		s.st.forwarded.Inc()
		r.Id = m.Id
		return r
	}
	s.st.upstreamFailures.Inc()
	return new(dns.Msg).SetRcode(m, dns.RcodeServerFailure)
}

// udpSize is the largest response the client takes over UDP: its EDNS
// buffer size, else 512, and never more than maxUDPResponse.
func udpSize(m *dns.Msg) int {
	size := dns.MinMsgSize
	if opt := m.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
		size = int(opt.UDPSize())
	}
	return min(size, maxUDPResponse)
}

// ParseUpstreams reads a comma-separated list of resolvers; an entry
// without a port gets 53.
func ParseUpstreams(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(f); err != nil {
			if ip := net.ParseIP(f); ip == nil {
				return nil, fmt.Errorf("%q: want IP or IP:PORT", f)
			}
			f = net.JoinHostPort(f, "53")
		}
		host, port, _ := net.SplitHostPort(f)
		if net.ParseIP(host) == nil {
			return nil, fmt.Errorf("%q: want an IP address, not a name", f)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return nil, fmt.Errorf("%q: want a port from 1 to 65535", f)
		}
		out = append(out, f)
	}
	return out, nil
}
