// Command xdsclient is a proxyless gRPC client used by the end-to-end
// tests: it dials an xds:/// target through grpc-go's own xDS resolver
// (bootstrapped from GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG, as
// any proxyless application is), makes unary calls, and prints how many
// answers each server id gave, as JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and balancers
)

func main() {
	target := flag.String("target", "", "xds:///host:port")
	n := flag.Int("n", 1000, "number of calls")
	timeout := flag.Duration("timeout", 60*time.Second, "overall deadline")
	flag.Parse()
	if err := run(*target, *n, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "xdsclient:", err)
		os.Exit(1)
	}
}

func run(target string, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", target, err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true}, grpc.WaitForReady(true))
		if err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		counts[resp.GetServerId()]++
	}
	return json.NewEncoder(os.Stdout).Encode(counts)
}
