package h2server

import (
	"bytes"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Streams that arrive together run on the server's workers (package
// workers, whose tests show a waiting worker takes the next job): after
// them workers wait for the next, rather than the handlers' goroutines
// ending.
func TestStreamsReuseWorkers(t *testing.T) {
	t.Parallel()
	var started sync.WaitGroup
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		started.Wait() // both streams run at once
	})}
	c := dialRaw(t, serve(t, srv))
	for i := range 3 {
		a, b := uint32(4*i+1), uint32(4*i+3)
		started.Add(2)
		c.getTogether(a, b)
		for ended := 0; ended < 2; {
			if f, ok := c.next().(*http2.MetaHeadersFrame); ok && f.StreamEnded() {
				ended++
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for srv.workers.Waiting() < 1 {
			if time.Now().After(deadline) {
				t.Fatalf("after streams %d and %d: no idle worker", a, b)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// getTogether sends GET / on streams a and b in one write.
func (r *rawClient) getTogether(a, b uint32) {
	r.t.Helper()
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	for _, id := range []uint32{a, b} {
		r.hbuf.Reset()
		for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: "/"}, {Name: ":authority", Value: "x"}} {
			_ = r.enc.WriteField(f)
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hbuf.Bytes(), EndStream: true, EndHeaders: true})
	}
	if _, err := r.c.Write(buf.Bytes()); err != nil {
		r.t.Fatal(err)
	}
}

// The one stream of a detached connection whose client sent nothing
// after it runs on the goroutine that read it, while a fresh one waits
// for the client: no worker is woken for it.
func TestLoneStreamRunsOnTheReader(t *testing.T) {
	t.Parallel()
	stacks := make(chan string, 1)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		stacks <- string(buf[:runtime.Stack(buf, false)])
	})}
	c := dialRaw(t, serve(t, srv))
	for i := range 3 {
		id := uint32(2*i + 1)
		c.get(id)
		stack := <-stacks
		if resp := c.await(id); resp.status != 200 {
			t.Fatalf("stream %d: status %d", id, resp.status)
		}
		if !strings.Contains(stack, "h2server.(*conn).handOver") || strings.Contains(stack, "workers.(*Pool") {
			t.Fatalf("stream %d's handler did not run on its reader's goroutine:\n%s", id, stack)
		}
	}
	if n := srv.workers.Waiting(); n != 0 {
		t.Errorf("%d workers started for streams that ran on their readers", n)
	}
}
