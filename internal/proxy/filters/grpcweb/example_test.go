package grpcweb_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/meshlens/meshlens/internal/proxy/filters/grpcweb"
)

// The request path of the gRPC-Web filter, around an upstream call (here
// a canned gRPC response).
func Example() {
	// Downstream request.
	reqHeader := http.Header{"Content-Type": {"application/grpc-web-text"}, "Accept": {"application/grpc-web-text"}}
	s := grpcweb.RequestHeaders(reqHeader)
	upstreamBody := s.RequestBody(strings.NewReader("AAAAAAA=")) // base64 of an empty message frame
	b, _ := io.ReadAll(upstreamBody)
	fmt.Println(reqHeader.Get("Content-Type"), reqHeader.Get("Te"), b)

	// Upstream response: headers, one message, trailers.
	respHeader := http.Header{"Content-Type": {"application/grpc"}}
	if s.ResponseHeaders(200, respHeader) {
		trailer := http.Header{"Grpc-Status": {"0"}}
		body := s.ResponseBody(bytes.NewReader(grpcweb.AppendFrame(nil, 0, nil)), func() http.Header { return trailer })
		out, _ := io.ReadAll(body)
		fmt.Println(respHeader.Get("Content-Type"), string(out))
	}
	// Output:
	// application/grpc trailers [0 0 0 0 0]
	// application/grpc-web-text+proto AAAAAAA=gAAAAA9ncnBjLXN0YXR1czowDQo=
}
