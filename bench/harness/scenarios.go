package harness

import (
	"fmt"
	"strconv"

	"github.com/meshlens/meshlens/bench/loadgen"
)

// Paths, in the order they are interleaved.
const (
	pathDirect = "direct"
	pathML1    = "meshlens-1hop"
	pathML2    = "meshlens-2hop"
	pathHA1    = "haproxy-1hop"
	pathHA2    = "haproxy-2hop"
	// pathRelay1 is the Go floor of an HTTP/1.1 hop (bench/gorelay); only
	// the floor block runs it.
	pathRelay1 = "gorelay-1hop"
)

var allPaths = []string{pathDirect, pathML1, pathML2, pathHA1, pathHA2}

// Scenario is one protocol and payload, run at each of its loads.
type Scenario struct {
	ID      string `json:"id"`
	Proto   string `json:"proto"`   // http1, h2c, grpc, grpc-stream, tcp
	Payload string `json:"payload"` // 1k, 64k, upload-1m
	// Loads are requests per second; 0 is the closed-loop maximum.
	Loads []float64 `json:"-"`
}

const closedLoop = 0

var scenarios = []Scenario{
	{ID: "http1-1k", Proto: "http1", Payload: "1k", Loads: []float64{1000, 5000, closedLoop}},
	{ID: "grpc-1k", Proto: "grpc", Payload: "1k", Loads: []float64{1000, 5000, closedLoop}},
	{ID: "h2c-1k", Proto: "h2c", Payload: "1k", Loads: []float64{1000, 5000, closedLoop}},
	{ID: "http1-64k", Proto: "http1", Payload: "64k", Loads: []float64{1000, closedLoop}},
	{ID: "http1-upload-1m", Proto: "http1", Payload: "upload-1m", Loads: []float64{100, closedLoop}},
	{ID: "grpc-stream-1k", Proto: "grpc-stream", Payload: "1k", Loads: []float64{1000, closedLoop}},
	{ID: "tcp-1k", Proto: "tcp", Payload: "1k", Loads: []float64{1000, closedLoop}},
}

// probeScenarios are what the harness checks every path with before
// measuring.
var probeScenarios = []Scenario{scenarios[0], scenarios[1], scenarios[2], scenarios[5], scenarios[6]}

func loadName(rate float64) string {
	if rate == closedLoop {
		return "max"
	}
	return strconv.Itoa(int(rate)) + "rps"
}

var upload1M = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte('A' + i%26)
	}
	return b
}()

// serverNodeFor is the server virtual node a protocol's meshlens paths end
// at.
func serverNodeFor(proto string) serverNode {
	switch proto {
	case "h2c":
		return serverNodes[1]
	case "grpc", "grpc-stream":
		return serverNodes[2]
	case "tcp":
		return serverNodes[3]
	}
	return serverNodes[0]
}

// procsOn lists the proxy processes a path goes through, outermost first.
func (e *env) procsOn(path, proto string) []*proc {
	switch path {
	case pathML1:
		return []*proc{e.sidecars[serverNodeFor(proto).name].p}
	case pathML2:
		return []*proc{e.sidecars[clientNode].p, e.sidecars[serverNodeFor(proto).name].p}
	case pathHA1:
		return []*proc{e.haInner}
	case pathHA2:
		return []*proc{e.haOuter, e.haInner}
	case pathRelay1:
		return []*proc{e.relay}
	}
	return nil
}

// dialer builds the load generator's connections for one scenario over
// one path.
func (e *env) dialer(path string, s Scenario) (loadgen.Dialer, error) {
	// Where each protocol enters the path.
	var httpAddr, h2cAddr, grpcAddr, tcpAddr string
	switch path {
	case pathDirect:
		httpAddr, h2cAddr, grpcAddr, tcpAddr = e.appAddrs[0], e.appAddrs[0], e.appAddrs[1], e.appAddrs[2]
	case pathML1:
		httpAddr = e.sidecars[serverNodes[0].name].ingress
		h2cAddr = e.sidecars[serverNodes[1].name].ingress
		grpcAddr = e.sidecars[serverNodes[2].name].ingress
		tcpAddr = e.sidecars[serverNodes[3].name].ingress
	case pathML2:
		httpAddr, h2cAddr, grpcAddr, tcpAddr = e.egress, e.egress, e.egress, e.egressTCP
	case pathHA1:
		httpAddr, h2cAddr, grpcAddr, tcpAddr = e.haIn.HTTP, e.haIn.H2C, e.haIn.GRPC, e.haIn.TCP
	case pathHA2:
		httpAddr, h2cAddr, grpcAddr, tcpAddr = e.haOut.HTTP, e.haOut.H2C, e.haOut.GRPC, e.haOut.TCP
	case pathRelay1:
		if s.Proto != "http1" || s.Payload == "upload-1m" {
			return nil, fmt.Errorf("path %s relays HTTP/1.1 requests without a body only, not %s %s", path, s.Proto, s.Payload)
		}
		httpAddr = e.relayAddr
	default:
		return nil, fmt.Errorf("unknown path %q", path)
	}
	size := 1 << 10
	urlPath := "/1k"
	var upload []byte
	switch s.Payload {
	case "64k":
		size, urlPath = 64<<10, "/64k"
	case "upload-1m":
		size, urlPath, upload = 2, "/upload", upload1M
	}
	node := serverNodeFor(s.Proto)
	authority := fmt.Sprintf("%s:%d", serviceName(node.name), node.port)
	switch s.Proto {
	case "http1":
		t := loadgen.HTTPTarget{URL: "http://" + httpAddr + urlPath, Upload: upload, Want: int64(size)}
		if path == pathML2 {
			// The application uses its sidecar as an HTTP proxy.
			t.URL, t.Proxy = "http://"+authority+urlPath, e.egress
		}
		return loadgen.HTTPDialer(t)
	case "h2c":
		t := loadgen.HTTPTarget{URL: "http://" + h2cAddr + urlPath, H2C: true, Upload: upload, Want: int64(size)}
		if path == pathML2 {
			t.Authority = authority
		}
		return loadgen.HTTPDialer(t)
	case "grpc", "grpc-stream":
		t := loadgen.GRPCTarget{Addr: grpcAddr, Size: size, Stream: s.Proto == "grpc-stream"}
		if path == pathML2 {
			t.Authority = authority
		}
		return loadgen.GRPCDialer(t), nil
	case "tcp":
		return loadgen.TCPDialer(tcpAddr, size), nil
	}
	return nil, fmt.Errorf("unknown protocol %q", s.Proto)
}
