package sockpeek

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

func pair(t *testing.T) (client, server net.Conn) {
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
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// eventually polls Look until it returns want: loopback delivery is fast
// but not instantaneous.
func eventually(t *testing.T, nc net.Conn, want State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := Look(nc)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Look = %d, want %d", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStates(t *testing.T) {
	t.Parallel()
	client, server := pair(t)
	if got := Look(server); got != Quiet {
		t.Fatalf("fresh connection: %d, want Quiet", got)
	}
	client.Write([]byte("x"))
	eventually(t, server, Data)
	// Looking consumed nothing.
	buf := make([]byte, 4)
	if n, err := server.Read(buf); n != 1 || err != nil {
		t.Fatalf("read after look: %d %v", n, err)
	}
	client.Close()
	eventually(t, server, Closed)
}

func TestWrappersAndNonSockets(t *testing.T) {
	t.Parallel()
	client, server := pair(t)
	wrapped := tls.Server(server, &tls.Config{})
	client.Close()
	eventually(t, wrapped, Closed)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Look(a); got != Unknown {
		t.Fatalf("net.Pipe: %d, want Unknown", got)
	}
}
