package h2server

import (
	"testing"

	"github.com/meshlens/meshlens/internal/allocstest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A gRPC request's head becomes an http.Request in four allocations
// (the request with its URL, the header map's two, one backing array for
// the values): common names are not copied, a plain :path is not parsed, and
// the request is what a parsed one would be.
func TestNewRequestAllocations(t *testing.T) {
	f := &http2.MetaHeadersFrame{
		HeadersFrame: &http2.HeadersFrame{},
		Fields: []hpack.HeaderField{
			{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
			{Name: ":path", Value: "/helloworld.Greeter/SayHello"}, {Name: ":authority", Value: "greeter.demo.local:8080"},
			{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
			{Name: "grpc-timeout", Value: "1S"}, {Name: "user-agent", Value: "grpc-go/1.85.0"},
			{Name: "grpc-accept-encoding", Value: "gzip"}, {Name: "traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		},
	}
	c := &conn{remote: "127.0.0.1:5000"}
	req, _, err := c.newRequest(f)
	if err != nil {
		t.Fatal(err)
	}
	if req.URL.Path != "/helloworld.Greeter/SayHello" || req.URL.RawQuery != "" || req.URL.RequestURI() != "/helloworld.Greeter/SayHello" ||
		req.Host != "greeter.demo.local:8080" || req.Header.Get("Grpc-Timeout") != "1S" || len(req.Header) != 6 || req.Header["Te"][0] != "trailers" {
		t.Fatalf("request %+v, URL %+v", req, req.URL)
	}
	if a := allocstest.Fewest(100, func() { _, _, _ = c.newRequest(f) }); a > 4 {
		t.Errorf("newRequest: %v allocations, want at most 4", a)
	}
	// A path with a query is parsed.
	f.Fields[2].Value = "/search?q=a%20b"
	req, _, err = c.newRequest(f)
	if err != nil || req.URL.Path != "/search" || req.URL.RawQuery != "q=a%20b" {
		t.Fatalf("request URL %+v, %v", req.URL, err)
	}
}
