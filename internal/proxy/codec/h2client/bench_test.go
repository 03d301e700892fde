package h2client

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkRoundTripGRPCLike measures a unary gRPC-shaped exchange (a
// streamed 1 KiB request body, a 1 KiB response with trailers) through
// the codec against net/http's HTTP/2 server, in parallel; the
// allocations include the server's.
func BenchmarkRoundTripGRPCLike(b *testing.B) {
	payload := strings.Repeat("x", 1024)
	addr := h2cServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		_, _ = io.WriteString(w, payload)
	}), 0)
	tr := newTransport(b, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 32<<10)
		for pb.Next() {
			req, _ := http.NewRequest("POST", "http://"+addr+"/svc/Method", strings.NewReader(payload))
			req.ContentLength = -1
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					if err != io.EOF {
						b.Fatal(err)
					}
					break
				}
			}
			if resp.Trailer.Get("Grpc-Status") != "0" {
				b.Fatal("no grpc-status trailer")
			}
		}
	})
}
