package router

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
)

func TestReplayBody(t *testing.T) {
	t.Parallel()
	t.Run("views replay what was read and go on", func(t *testing.T) {
		rb := newReplayBody(iotest.OneByteReader(strings.NewReader("0123456789")), -1, 64)
		v1 := rb.view()
		if s, err := readN(v1, 4); s != "0123" || err != nil {
			t.Fatalf("first view: %q %v", s, err)
		}
		_ = v1.Close()
		if _, err := v1.Read(make([]byte, 1)); !errors.Is(err, errAttemptOver) {
			t.Errorf("closed view: %v, want errAttemptOver", err)
		}
		if !rb.canReplay() {
			t.Fatal("canReplay false within the limit")
		}
		if b, err := io.ReadAll(rb.view()); string(b) != "0123456789" || err != nil {
			t.Errorf("second view: %q %v", b, err)
		}
		if b, err := io.ReadAll(rb.view()); string(b) != "0123456789" || err != nil {
			t.Errorf("third view, after EOF: %q %v", b, err)
		}
	})
	t.Run("outgrown", func(t *testing.T) {
		rb := newReplayBody(strings.NewReader("0123456789"), 10, 4)
		v1 := rb.view()
		if b, err := io.ReadAll(v1); string(b) != "0123456789" || err != nil {
			t.Errorf("first view streams past the limit: %q %v", b, err)
		}
		if rb.canReplay() {
			t.Error("canReplay true after the body outgrew the buffer")
		}
		if _, err := rb.view().Read(make([]byte, 8)); !errors.Is(err, errBodyOutgrew) {
			t.Errorf("view of an outgrown body: %v, want errBodyOutgrew", err)
		}
	})
	t.Run("an abandoned read past the limit is kept for the next attempt", func(t *testing.T) {
		pr, pw := io.Pipe()
		src := &signalReader{r: pr, reading: make(chan struct{}, 4)}
		rb := newReplayBody(src, -1, 4)
		v1 := rb.view()
		go func() { _, _ = io.WriteString(pw, "012") }()
		if s, err := readN(v1, 3); s != "012" || err != nil {
			t.Fatalf("first view: %q %v", s, err)
		}
		<-src.reading
		got := make(chan string)
		go func() {
			b := make([]byte, 16)
			n, _ := v1.Read(b) // blocks in the source
			got <- string(b[:n])
		}()
		// v1's attempt is given up while its transport waits for the
		// body; what it then reads goes past the limit.
		<-src.reading
		_ = v1.Close()
		go func() { _, _ = io.WriteString(pw, "3456789"); _ = pw.Close() }()
		if s := <-got; s != "3456789" {
			t.Errorf("abandoned read: %q", s)
		}
		if rb.canReplay() {
			t.Error("canReplay true after the body outgrew the buffer")
		}
		if b, err := io.ReadAll(rb.view()); string(b) != "0123456789" || err != nil {
			t.Errorf("the next attempt's view: %q %v, want the whole body", b, err)
		}
	})
	t.Run("ReadReady hands over what has arrived, and keeps it", func(t *testing.T) {
		src := &readySource{buf: "0123"}
		rb := newReplayBody(src, -1, 64)
		v1 := rb.view()
		var rr stream.ReadyReader = v1
		b := make([]byte, 16)
		if n, err := rr.ReadReady(b); string(b[:n]) != "0123" || err != nil {
			t.Fatalf("ReadReady: %q %v", b[:n], err)
		}
		if n, err := rr.ReadReady(b); n != 0 || err != nil {
			t.Fatalf("ReadReady with nothing arrived: %d %v, want 0 and nil", n, err)
		}
		src.buf, src.eof = "45", true
		if s, err := readN(v1, 2); s != "45" || err != nil {
			t.Fatalf("Read after ReadReady: %q %v", s, err)
		}
		if n, err := rr.ReadReady(b); n != 0 || err != io.EOF {
			t.Fatalf("ReadReady at the end: %d %v, want 0 and EOF", n, err)
		}
		// A later attempt replays what both reads took, ReadReady first.
		v2 := rb.view()
		if n, err := v2.ReadReady(b); string(b[:n]) != "012345" || err != nil {
			t.Errorf("second view's ReadReady: %q %v", b[:n], err)
		}
		if n, err := v2.ReadReady(b); n != 0 || err != io.EOF {
			t.Errorf("second view's ReadReady at the end: %d %v, want 0 and EOF", n, err)
		}
	})
	t.Run("ReadReady over a source that cannot say what has arrived", func(t *testing.T) {
		rb := newReplayBody(strings.NewReader("01"), -1, 64)
		if n, err := rb.view().ReadReady(make([]byte, 4)); n != 0 || err != nil {
			t.Errorf("ReadReady: %d %v, want 0 and nil (nothing known to have arrived)", n, err)
		}
		if b, err := io.ReadAll(rb.view()); string(b) != "01" || err != nil {
			t.Errorf("view after it: %q %v", b, err)
		}
	})
	t.Run("source fails", func(t *testing.T) {
		boom := errors.New("boom")
		rb := newReplayBody(io.MultiReader(strings.NewReader("01"), iotest.ErrReader(boom)), -1, 64)
		if _, err := io.ReadAll(rb.view()); !errors.Is(err, boom) {
			t.Errorf("first view: %v, want the source's error", err)
		}
		if rb.canReplay() {
			t.Error("canReplay true after the source failed")
		}
	})
}

// readySource is a body whose arrived bytes are buf, ended when eof is
// set (Read, like ReadReady, never waits).
type readySource struct {
	buf string
	eof bool
}

func (r *readySource) Read(p []byte) (int, error) {
	n, err := r.ReadReady(p)
	if n == 0 && err == nil {
		return 0, errors.New("readySource: Read would wait")
	}
	return n, err
}

func (r *readySource) ReadReady(p []byte) (int, error) {
	if r.buf == "" {
		if r.eof {
			return 0, io.EOF
		}
		return 0, nil
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// readN reads exactly n bytes from r, or what it can with the error.
func readN(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	m, err := io.ReadFull(r, b)
	return string(b[:m]), err
}

// signalReader tells on reading each time a Read starts.
type signalReader struct {
	r       io.Reader
	reading chan struct{}
}

func (s *signalReader) Read(p []byte) (int, error) {
	s.reading <- struct{}{}
	return s.r.Read(p)
}
