//go:build linux

package idlewait

import (
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// pair returns a connected client and server (the server wrapped in
// Conn) on loopback.
func pair(t *testing.T) (client net.Conn, server *Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	server = &Conn{Conn: sc}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// parkRead parks c; the function reads one byte and reports what it
// read on the channel returned.
type readResult struct {
	b   byte
	err error
	at  time.Time
}

func parkRead(t *testing.T, c *Conn, deadline time.Time) <-chan readResult {
	t.Helper()
	out := make(chan readResult, 1)
	if !c.WaitReadable(deadline, func() {
		var b [1]byte
		_, err := io.ReadFull(c, b[:])
		out <- readResult{b[0], err, time.Now()}
	}) {
		t.Fatal("WaitReadable: not parked on Linux loopback TCP")
	}
	return out
}

func await(t *testing.T, ch <-chan readResult, what string) readResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the parked connection's function did not run", what)
		return readResult{}
	}
}

func TestSupported(t *testing.T) {
	if !supported() {
		t.Fatalf("no epoll here: %v", pl.err)
	}
}

// Bytes arriving start the function, which reads them; parked again, the
// connection wakes again for the next bytes (the registration re-armed).
func TestBytesWake(t *testing.T) {
	client, server := pair(t)
	for i := range 3 {
		ch := parkRead(t, server, time.Time{})
		select {
		case r := <-ch:
			t.Fatalf("round %d: woke with nothing sent: %+v", i, r)
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := client.Write([]byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
		if r := await(t, ch, "bytes"); r.err != nil || r.b != byte('a'+i) {
			t.Fatalf("round %d: read %q, %v", i, r.b, r.err)
		}
	}
}

// The peer hanging up wakes the connection, which reads EOF.
func TestHangUpWakes(t *testing.T) {
	client, server := pair(t)
	ch := parkRead(t, server, time.Time{})
	client.Close()
	if r := await(t, ch, "hang-up"); r.err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want EOF", r.err)
	}
}

// Close wakes the connection, which finds itself closed: a parked
// connection closed by its server (drain, shutdown) still ends.
func TestCloseWakes(t *testing.T) {
	_, server := pair(t)
	ch := parkRead(t, server, time.Time{})
	server.Close()
	if r := await(t, ch, "close"); r.err == nil {
		t.Fatal("read on a closed connection succeeded")
	}
	if n := Parked(); n != 0 {
		t.Errorf("%d connections parked after the only one woke", n)
	}
}

// A new read deadline wakes the connection, which then reads under it:
// a past deadline ends the read, as it ends a read blocked on a
// goroutine (the HTTP/1.1 server's shutdown sets one).
func TestReadDeadlineWakes(t *testing.T) {
	_, server := pair(t)
	ch := parkRead(t, server, time.Time{})
	_ = server.SetReadDeadline(time.Unix(1, 0))
	if r := await(t, ch, "past deadline"); !isTimeout(r.err) {
		t.Fatalf("read after a past deadline: %v, want a timeout", r.err)
	}
}

// The deadline given to Park wakes the connection at that time (not
// more than earlyWake before it), and the read then times out under the
// connection's own deadline.
func TestParkDeadline(t *testing.T) {
	_, server := pair(t)
	start := time.Now()
	deadline := start.Add(300 * time.Millisecond)
	_ = server.Conn.SetReadDeadline(deadline)
	ch := parkRead(t, server, deadline)
	r := await(t, ch, "deadline")
	if !isTimeout(r.err) {
		t.Fatalf("read at the deadline: %v, want a timeout", r.err)
	}
	if r.at.Before(deadline) {
		t.Fatalf("read ended %v before its deadline", deadline.Sub(r.at))
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// Parked connections hold no goroutine: 200 of them add none.
func TestParkedHoldNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	var chans []<-chan readResult
	var clients []net.Conn
	for range 200 {
		c, s := pair(t)
		clients = append(clients, c)
		chans = append(chans, parkRead(t, s, time.Time{}))
	}
	if d := runtime.NumGoroutine() - before; d > 5 {
		t.Errorf("200 parked connections added %d goroutines, want none", d)
	}
	if n := Parked(); n < 200 {
		t.Errorf("Parked() = %d, want at least 200", n)
	}
	for i, c := range clients {
		_, _ = c.Write([]byte{'x'})
		if r := await(t, chans[i], "bytes"); r.err != nil {
			t.Fatalf("connection %d: %v", i, r.err)
		}
	}
}

// A wake and the socket's event racing start the function once: bytes
// arrive as Close or a deadline change wakes the connection, many times
// over.
func TestWakeAndEventRunOnce(t *testing.T) {
	for i := range 200 {
		client, server := pair(t)
		var runs atomic.Int32
		done := make(chan struct{})
		if !server.WaitReadable(time.Time{}, func() {
			runs.Add(1)
			close(done)
		}) {
			t.Fatal("not parked")
		}
		go func() { _, _ = client.Write([]byte{'x'}) }()
		if i%2 == 0 {
			_ = server.SetReadDeadline(time.Time{})
		} else {
			server.Close()
		}
		<-done
		time.Sleep(time.Millisecond)
		if n := runs.Load(); n != 1 {
			t.Fatalf("iteration %d: the function ran %d times", i, n)
		}
		client.Close()
		server.Close()
	}
}

// A connection that cannot be parked is refused at once, its function
// not run: a pipe has no socket.
func TestNoSocketIsNotParked(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &Conn{Conn: a}
	if c.WaitReadable(time.Time{}, func() { t.Error("ran") }) {
		t.Fatal("a pipe was parked")
	}
	ran := make(chan struct{})
	ParkOrGo(a, time.Time{}, func() { close(ran) })
	<-ran
}

// A connection parked with bytes already waiting wakes at once, and its
// function may park it again before the first Park has returned: a
// thousand rounds of that, each byte read once and in order.
func TestReparkFromTheWokenFunction(t *testing.T) {
	client, server := pair(t)
	const rounds = 1000
	msg := make([]byte, rounds)
	for i := range msg {
		msg[i] = byte(i)
	}
	if _, err := client.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	var read []byte
	var step func()
	step = func() {
		var b [1]byte
		if _, err := io.ReadFull(server, b[:]); err != nil {
			t.Errorf("read %d: %v", len(read), err)
			got <- read
			return
		}
		read = append(read, b[0])
		if len(read) == rounds {
			got <- read
			return
		}
		if !server.WaitReadable(time.Time{}, step) {
			t.Errorf("round %d: not parked", len(read))
			got <- read
		}
	}
	if !server.WaitReadable(time.Time{}, step) {
		t.Fatal("not parked")
	}
	select {
	case r := <-got:
		if string(r) != string(msg) {
			t.Fatalf("read %d bytes out of order or short, want %d in order", len(r), rounds)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the rounds stopped")
	}
}

// A read deadline set before Park, by the reader or anyone else, bounds
// the parked wait as it bounds a blocked read: a past one ends it at
// once, though Park was given none.
func TestDeadlineSetBeforeParkBoundsTheWait(t *testing.T) {
	_, server := pair(t)
	server.SetReadDeadline(time.Now().Add(-time.Second))
	r := await(t, parkRead(t, server, time.Time{}), "a past read deadline set before Park")
	if !isTimeout(r.err) {
		t.Fatalf("read after the wake: %v, want a timeout", r.err)
	}
	server.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	start := time.Now()
	r = await(t, parkRead(t, server, time.Now().Add(time.Hour)), "a read deadline earlier than Park's")
	if !isTimeout(r.err) || r.at.Sub(start) > 5*time.Second {
		t.Fatalf("read after %v: %v, want a timeout after 300ms", r.at.Sub(start), r.err)
	}
}

// A read deadline set from another goroutine while the reader parks (the
// HTTP/2 writer's linger after GOAWAY, a drain) is never lost, whichever
// comes first: every round's function runs.
func TestDeadlineRacingParkIsNotLost(t *testing.T) {
	_, server := pair(t)
	for i := range 1000 {
		server.SetReadDeadline(time.Time{})
		start := make(chan struct{})
		go func() {
			<-start
			if i%3 == 0 {
				runtime.Gosched()
			}
			server.SetReadDeadline(time.Unix(1, 0))
		}()
		out := make(chan readResult, 1)
		close(start)
		if !server.WaitReadable(time.Time{}, func() {
			var b [1]byte
			_, err := server.Read(b[:])
			out <- readResult{err: err}
		}) {
			t.Fatal("not parked")
		}
		select {
		case r := <-out:
			if !isTimeout(r.err) {
				t.Fatalf("round %d: read %v, want a timeout", i, r.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: a read deadline set while parking was lost: the connection is still parked", i)
		}
	}
}
