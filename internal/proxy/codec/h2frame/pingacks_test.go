package h2frame

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// PINGs' acknowledgements wait for the next write, which carries them
// all in order; with no write, the writer is woken after AckDelay.
func TestPingAcks(t *testing.T) {
	var mu sync.Mutex
	flushed := make(chan time.Time, 4)
	var a PingAcks
	// wake runs under mu, as a connection's writer wake-up does.
	a.Init(&mu, func() {
		if mu.TryLock() {
			t.Error("wake called without the connection's lock")
			mu.Unlock()
		}
		flushed <- time.Now()
	})
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, &buf)

	mu.Lock()
	a.Add([8]byte{1}, 0, 8)
	a.Add([8]byte{2}, 0, 8)
	if a.Len() != 2 {
		t.Fatalf("Len = %d, want 2", a.Len())
	}
	if a.Add([8]byte{9}, 6, 8) {
		t.Fatal("Add took an acknowledgement past the limit (6 control frames and 2 acknowledgements queued, 8 allowed)")
	}
	a.Write(fr)
	mu.Unlock()
	for _, want := range []byte{1, 2} {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		p, ok := f.(*http2.PingFrame)
		if !ok || !p.IsAck() || p.Data != [8]byte{want} {
			t.Fatalf("frame %v, want the acknowledgement of PING %d", f, want)
		}
	}
	if a.Len() != 0 {
		t.Fatalf("Len after Write = %d", a.Len())
	}
	select {
	case <-flushed:
		t.Fatal("wake called although the acknowledgements were written")
	case <-time.After(3 * AckDelay):
	}

	mu.Lock()
	start := time.Now()
	a.Add([8]byte{3}, 0, 8)
	mu.Unlock()
	select {
	case at := <-flushed:
		if d := at.Sub(start); d < AckDelay {
			t.Errorf("wake after %v, before AckDelay (%v)", d, AckDelay)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no wake for an acknowledgement no write took")
	}
	mu.Lock()
	a.Write(fr)
	a.Stop()
	a.Write(fr) // nothing: no frame, no panic
	mu.Unlock()
	if f, err := fr.ReadFrame(); err != nil || f.(*http2.PingFrame).Data != [8]byte{3} {
		t.Fatalf("frame %v %v, want the acknowledgement of PING 3", f, err)
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes more than the acknowledgements", buf.Len())
	}
}
