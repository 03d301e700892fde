package tunnel

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// A half-close from the client reaches the upstream, whose answer still
// flows back; the byte counts are each direction's.
func TestPipeBothHalfClose(t *testing.T) {
	t.Parallel()
	app, down := tcpPair(t)   // app is the downstream client
	up, backend := tcpPair(t) // backend is the upstream server
	type result struct {
		toDown, toUp int64
		idled        bool
	}
	done := make(chan result, 1)
	go func() {
		d, u, i := PipeBoth(down, up, 5*time.Second)
		done <- result{d, u, i}
	}()
	if _, err := app.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = app.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(backend)
	if err != nil || string(got) != "ping" {
		t.Fatalf("upstream read %q, %v; want ping then EOF", got, err)
	}
	if _, err := backend.Write([]byte("pong!")); err != nil {
		t.Fatal(err)
	}
	_ = backend.Close()
	back, err := io.ReadAll(app)
	if err != nil || string(back) != "pong!" {
		t.Fatalf("downstream read %q, %v; want pong!", back, err)
	}
	r := <-done
	if r.toDown != 5 || r.toUp != 4 || r.idled {
		t.Errorf("PipeBoth = %d down, %d up, idled %v; want 5, 4, false", r.toDown, r.toUp, r.idled)
	}
}

// A pair silent for the idle timeout is ended, and says so.
func TestPipeBothIdle(t *testing.T) {
	t.Parallel()
	_, down := tcpPair(t)
	up, _ := tcpPair(t)
	if _, _, idled := PipeBoth(down, up, 50*time.Millisecond); !idled {
		t.Error("an idle pair was not reported idle")
	}
}

// A drain closes the pairs still open when its context ends, and refuses
// new ones.
func TestSetDrain(t *testing.T) {
	t.Parallel()
	_, down := tcpPair(t)
	var s Set
	p := NewPair(down, nil)
	if !s.Add(p) {
		t.Fatal("a pair was refused before the drain")
	}
	go func() {
		buf := make([]byte, 1)
		_, _ = down.Read(buf) // ends when the drain closes the pair
		s.Remove(p)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	s.Drain(ctx)
	if s.Add(NewPair(down, nil)) {
		t.Error("a pair was accepted after the drain began")
	}
}
