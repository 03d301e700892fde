//go:build unix

package h1client

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cannedServer answers every request head with a fixed 1 KB response and
// costs little CPU itself, so that the client's share stands out.
func cannedServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Tue, 25 Nov 2026 10:00:00 GMT\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 16<<10)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkRoundTrip compares this Transport with net/http's on parallel
// GETs of a 1 KB body, against a net/http server and against a canned
// raw server. cpu-ns/op is the process's CPU time (client and server)
// per request.
func BenchmarkRoundTrip(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(body)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	servers := []struct{ name, addr string }{{"server=net-http", ln.Addr().String()}, {"server=canned", cannedServer(b)}}

	var d net.Dialer
	clients := []struct {
		name string
		rt   func() http.RoundTripper
	}{
		{"client=h1client", func() http.RoundTripper {
			return &Transport{Dial: d.DialContext}
		}},
		{"client=http.Transport", func() http.RoundTripper {
			return &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 128, DisableCompression: true}
		}},
	}
	for _, s := range servers {
		for _, c := range clients {
			b.Run(s.name+"/"+c.name, func(b *testing.B) {
				rt := c.rt()
				defer rt.(interface{ CloseIdleConnections() }).CloseIdleConnections()
				url := "http://" + s.addr + "/api/items?page=2"
				b.ReportAllocs()
				b.ResetTimer()
				start := cpuTime()
				b.SetParallelism(4) // 8 concurrent requests on 2 cores
				b.RunParallel(func(pb *testing.PB) {
					buf := make([]byte, 4096)
					// Cancellable, like the server request contexts
					// the proxy passes on.
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
					req.Header.Set("Accept", "*/*")
					req.Header.Set("X-Request-Id", "5f0c6b1e-1d1a-4c4e-9f1e-0a0b0c0d0e0f")
					for pb.Next() {
						resp, err := rt.RoundTrip(req)
						if err != nil {
							b.Error(err)
							return
						}
						n := 0
						for {
							m, err := resp.Body.Read(buf)
							n += m
							if err == io.EOF {
								break
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
						resp.Body.Close()
						if n != 1024 {
							b.Errorf("body of %d bytes", n)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
