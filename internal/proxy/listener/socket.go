package listener

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Env is what every listener of a proxy shares: its logger, the wait
// group its connection goroutines join, its connection counters, and the
// time a client has to send the bytes the inspectors wait for.
type Env struct {
	Log               *slog.Logger
	Conns             *sync.WaitGroup
	OpenConns         *atomic.Int64
	ConnIDs           *atomic.Uint64
	HeaderReadTimeout time.Duration
}

// Socket is one bound listening socket.
type Socket struct {
	env     *Env
	key     string // BindSpec.Key: what it is kept under across snapshots
	addr    string // as configured
	ln      net.Listener
	binding atomic.Pointer[Binding]
	closed  atomic.Bool
	done    chan struct{} // closed when the accept loop returns
}

// Binding says which listener a socket serves and, for a Listen
// mapping, the listener port its connections stand for.
type Binding struct {
	Runtime    *Runtime
	ForcedPort uint32
}

// BindSpec is a socket a snapshot wants.
type BindSpec struct {
	Addr       string
	Listener   string
	ForcedPort uint32
}

// Key identifies a socket across snapshots: its address, so that a
// listener whose address is unchanged keeps its socket. A port-0 address
// (tests, ephemeral binds) is a different socket per listener and port.
func (b BindSpec) Key() string {
	if _, port, err := net.SplitHostPort(b.Addr); err == nil && port == "0" {
		return b.Addr + "#" + b.Listener + "#" + strconv.FormatUint(uint64(b.ForcedPort), 10)
	}
	return b.Addr
}

// Listen binds a socket for addr, kept under key; it does not accept
// until AcceptLoop. An IPv4 address (0.0.0.0 included) binds an IPv4
// socket, as Envoy does: Go would make 0.0.0.0 a dual-stack socket, and
// its peers' addresses would read ::ffff:a.b.c.d in access logs and
// x-forwarded-for.
func Listen(env *Env, lc *net.ListenConfig, key, addr string) (*Socket, error) {
	network := "tcp"
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
			network = "tcp4"
		}
	}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return &Socket{env: env, key: key, addr: addr, ln: ln, done: make(chan struct{})}, nil
}

// Key is what the socket is kept under across snapshots (BindSpec.Key).
func (s *Socket) Key() string { return s.key }

// Addr is the address the socket is bound to.
func (s *Socket) Addr() net.Addr { return s.ln.Addr() }

// Bind points the socket's new connections at b.
func (s *Socket) Bind(b *Binding) { s.binding.Store(b) }

// Binding is what the socket's new connections go to; nil before Bind.
func (s *Socket) Binding() *Binding { return s.binding.Load() }

// Closed reports whether Close was called.
func (s *Socket) Closed() bool { return s.closed.Load() }

// Done is closed when the accept loop has returned.
func (s *Socket) Done() <-chan struct{} { return s.done }

// AcceptLoop accepts until the socket is closed, handing each
// connection to the bound listener on a goroutine of its own.
func (s *Socket) AcceptLoop() {
	defer close(s.done)
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as
			// net/http does rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.env.Log.Warn("accept failed", "addr", s.addr, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		b := s.binding.Load()
		s.env.Conns.Add(1)
		go func() {
			defer s.env.Conns.Done()
			b.Runtime.handleConn(c, b.ForcedPort)
		}()
	}
}

// Close stops accepting; connections already accepted are unaffected.
func (s *Socket) Close() {
	if s.closed.CompareAndSwap(false, true) {
		_ = s.ln.Close()
	}
}
