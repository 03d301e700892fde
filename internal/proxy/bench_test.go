package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	listenerv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/listener/v3"
)

// benchUpstream answers every request with 1 KB, as the performance
// notes' origin does.
func benchUpstream(b *testing.B) *upstreamServer {
	body := bytes.Repeat([]byte("x"), 1024)
	return startUpstream(b, "bench", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/octet-stream"}
		_, _ = w.Write(body)
	})
}

func benchLoop(b *testing.B, url, host string) {
	c := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true}}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = host
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	// The process's CPU per request, client and upstream included: on a
	// shared machine a steadier figure than ns/op.
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// processCPU is the user and system CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHTTP1Proxy is one hop: in-process client -> egress listener ->
// in-process upstream, HTTP/1.1 keep-alive on loopback. Allocations
// include the client's and the upstream's; BenchmarkHTTP1Direct is the
// same without the proxy, so the difference is the proxy's share.
func BenchmarkHTTP1Proxy(b *testing.B) {
	up := benchUpstream(b)
	p := startProxy(b, Config{})
	mustApply(b, p, outbound(xCluster("cds_bench", up.Addr())).snap(b))
	benchLoop(b, "http://"+addrOf(b, p, egressName, 0)+"/bench", "greeting.demo.local")
}

// BenchmarkHTTP1Direct is BenchmarkHTTP1Proxy's baseline.
func BenchmarkHTTP1Direct(b *testing.B) {
	up := benchUpstream(b)
	benchLoop(b, "http://"+up.Addr()+"/bench", "greeting.demo.local")
}

// BenchmarkHTTP1ProxyNoStats is BenchmarkHTTP1Proxy with the data path's
// stats and mesh metrics off: the difference is what the stats cost, in
// time and (none expected) in allocations.
func BenchmarkHTTP1ProxyNoStats(b *testing.B) {
	up := benchUpstream(b)
	p := startProxy(b, Config{DisableStats: true})
	mustApply(b, p, outbound(xCluster("cds_bench", up.Addr())).snap(b))
	benchLoop(b, "http://"+addrOf(b, p, egressName, 0)+"/bench", "greeting.demo.local")
}

// BenchmarkHTTP1ProxyPolicies is BenchmarkHTTP1Proxy with App Mesh's
// listener policies on the cluster (outlier detection, circuit breakers,
// a health check every minute): their cost per request, which must
// allocate nothing more.
func BenchmarkHTTP1ProxyPolicies(b *testing.B) {
	up := benchUpstream(b)
	p := startProxy(b, Config{})
	c := withBreakers(withOutlier(xCluster("cds_bench", up.Addr()), 5, 10*time.Second, 30*time.Second, 10), 1024, 1024, 1024, 3)
	c = withHealthCheck(c, time.Minute, "", 1, 1)
	mustApply(b, p, outbound(c).snap(b))
	benchLoop(b, "http://"+addrOf(b, p, egressName, 0)+"/bench", "greeting.demo.local")
}

// BenchmarkHTTP1ProxyStdlibClient is BenchmarkHTTP1Proxy with net/http's
// Transport upstream instead of the synchronous client.
func BenchmarkHTTP1ProxyStdlibClient(b *testing.B) {
	up := benchUpstream(b)
	p := startProxy(b, Config{StdlibHTTP1Client: true})
	mustApply(b, p, outbound(xCluster("cds_bench", up.Addr())).snap(b))
	benchLoop(b, "http://"+addrOf(b, p, egressName, 0)+"/bench", "greeting.demo.local")
}

// benchTraced is BenchmarkHTTP1Proxy with tracing at percent to a Zipkin
// collector on loopback.
func benchTraced(b *testing.B, percent float64) {
	z := startZipkin(b)
	up := benchUpstream(b)
	p := startProxy(b, Config{})
	x := outbound(xCluster("cds_bench", up.Addr()), xCluster("cds_zipkin", strings.TrimPrefix(z.srv.URL, "http://")))
	x.listeners = []*listenerv3.Listener{xListener(egressName, "0.0.0.0:15001", xChain("egress_http", 0, xHCM("egress", "rds_egress_http_15001", withZipkinTracing(percent))))}
	mustApply(b, p, x.snap(b))
	benchLoop(b, "http://"+addrOf(b, p, egressName, 0)+"/bench", "greeting.demo.local")
}

// BenchmarkHTTP1ProxyTracingOff is BenchmarkHTTP1Proxy with tracing
// configured at 0 %: no request is sampled.
func BenchmarkHTTP1ProxyTracingOff(b *testing.B) { benchTraced(b, 0) }

// BenchmarkHTTP1ProxyTracing1 samples 1 % of the requests.
func BenchmarkHTTP1ProxyTracing1(b *testing.B) { benchTraced(b, 1) }

// BenchmarkHTTP1ProxyTracing100 samples every request.
func BenchmarkHTTP1ProxyTracing100(b *testing.B) { benchTraced(b, 100) }
