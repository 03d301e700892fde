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
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"

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
		servers, err := readResolvConf(cfg.ResolvConf)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return nil, fmt.Errorf("dns upstreams from %s: %w", cfg.ResolvConf, err)
		}
		for _, srv := range servers {
			out = append(out, net.JoinHostPort(srv, resolvConfPort))
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
	q, id, hdrOK, err := decodeQuery(pkt)
	if err != nil {
		s.st.malformed.Inc()
		if !hdrOK {
			return nil
		}
		rcode := dnsmessage.RCodeFormatError
		if errors.Is(err, errOpcode) {
			rcode = dnsmessage.RCodeNotImplemented
		}
		b := dnsmessage.NewBuilder(make([]byte, 0, headerSize), dnsmessage.Header{ID: id, Response: true, RCode: rcode})
		out, _ := b.Finish()
		return out
	}
	s.st.queries.Inc()
	var r []byte
	if addr, ok := s.table.Load().lookupQuestion(q.name); ok && (q.q.Class == dnsmessage.ClassINET || q.q.Class == dnsmessage.ClassANY) {
		s.st.local.Inc()
		r, err = s.local(q, addr)
	} else {
		r, err = s.forward(ctx, q, network)
	}
	if err != nil {
		s.log.Debug("dns: pack response", "name", q.name, "err", err)
		r, _ = q.reply(dnsmessage.RCodeServerFailure)
	}
	if network == "udp" {
		r = truncate(r, q.udpSize())
	}
	return r
}

// reply is the response to q with rcode and no record.
func (q *query) reply(rcode dnsmessage.RCode) ([]byte, error) {
	b, err := q.replyBuilder(dnsmessage.Header{RCode: rcode})
	if err != nil {
		return nil, err
	}
	return b.Finish()
}

// replyBuilder starts the response to q as miekg/dns's SetReply did: the
// header h with q's id, opcode, RD and CD bits, then q's question; the
// Builder is ready for answers.
func (q *query) replyBuilder(h dnsmessage.Header) (*dnsmessage.Builder, error) {
	h.ID, h.Response, h.OpCode = q.hdr.ID, true, q.hdr.OpCode
	h.RecursionDesired, h.CheckingDisabled = q.hdr.RecursionDesired, q.hdr.CheckingDisabled
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q.q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	return &b, nil
}

// local answers a query for a mesh name, whose address is addr. A mesh
// name has only an A record: other types get an empty answer (NODATA),
// never a forward, so that a resolver asking for A and AAAA at once does
// not take the upstream's NXDOMAIN for the name's.
func (s *Server) local(q *query, addr netip.Addr) ([]byte, error) {
	b, err := q.replyBuilder(dnsmessage.Header{Authoritative: true, RecursionAvailable: true})
	if err != nil {
		return nil, err
	}
	if q.q.Type == dnsmessage.TypeA || q.q.Type == dnsmessage.TypeALL {
		h := dnsmessage.ResourceHeader{Name: q.q.Name, Class: dnsmessage.ClassINET, TTL: s.cfg.TTL}
		if err := b.AResource(h, dnsmessage.AResource{A: addr.As4()}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// forward asks the upstreams in order, each bounded by the timeout, and
// returns the first answer; SERVFAIL when none answers. An upstream's UDP
// answer is read whole up to maxUDPResponse (or the client's larger EDNS
// buffer) even when it exceeds what the client takes: answer truncates it
// to the client's size.
func (s *Server) forward(ctx context.Context, q *query, network string) ([]byte, error) {
	for _, up := range s.upstreams {
		actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		r, err := exchangeUpstream(actx, network, up, q.wire, max(maxUDPResponse, q.ednsSize))
		cancel()
		if err != nil {
			s.log.Debug("dns: upstream", "upstream", up, "name", q.name, "err", err)
			continue
		}
		s.st.forwarded.Inc()
		return r, nil
	}
	s.st.upstreamFailures.Inc()
	return q.reply(dnsmessage.RCodeServerFailure)
}

// errID is an upstream's TCP answer to another query.
var errID = errors.New("answer id does not match the query's")

// exchangeUpstream sends query to the resolver addr over network (udp or tcp)
// and returns its answer, which must decode whole and have the query's
// id; over UDP, answers with another id are ignored (they may answer an
// earlier query that timed out) and an answer is read into a buffer of
// bufSize bytes. ctx bounds the whole exchange.
func exchangeUpstream(ctx context.Context, network, addr string, query []byte, bufSize int) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	// The server shutting down ends the exchange at once.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	id := binary.BigEndian.Uint16(query)
	if network == "tcp" {
		out := make([]byte, 2+len(query))
		binary.BigEndian.PutUint16(out, uint16(len(query)))
		copy(out[2:], query)
		if _, err := c.Write(out); err != nil {
			return nil, err
		}
		var lenBuf [2]byte
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return nil, err
		}
		r := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(c, r); err != nil {
			return nil, err
		}
		if err := checkAnswer(r); err != nil {
			return nil, err
		}
		if binary.BigEndian.Uint16(r) != id {
			return nil, errID
		}
		return r, nil
	}
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, bufSize)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		r := buf[:n]
		if err := checkAnswer(r); err != nil {
			return nil, err
		}
		if binary.BigEndian.Uint16(r) == id {
			return append([]byte(nil), r...), nil
		}
	}
}

// checkAnswer returns why an upstream's answer is not a DNS message that
// decodes whole, records' data included; nil when it is one.
func checkAnswer(r []byte) error {
	if len(r) < headerSize {
		return fmt.Errorf("answer of %d bytes: %w", len(r), errTooShort)
	}
	var m dnsmessage.Message
	if err := m.Unpack(r); err != nil {
		return fmt.Errorf("malformed answer: %w", err)
	}
	// dnsmessage does not check that a record of fixed size (A, CNAME...)
	// ends within the message; layout does.
	if _, err := layout(r); err != nil {
		return fmt.Errorf("malformed answer: %w", err)
	}
	return nil
}

// udpSize is the largest response the client takes over UDP: its EDNS
// buffer size, else 512, and never more than maxUDPResponse.
func (q *query) udpSize() int {
	return min(max(minUDPSize, q.ednsSize), maxUDPResponse)
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
