// Package grpctarget turns the control-plane address a proxy is given
// (--xds-addr) into a gRPC target that fails over between replicas: a
// comma-separated list of host:port, or one host name whose DNS answer
// holds several addresses. Either way the channel uses pick_first over a
// shuffled address list, so a fleet of proxies spreads over the replicas,
// each proxy holds one stream on one replica, and when that replica's
// connection breaks the next stream goes to another.
package grpctarget

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// serviceConfig asks for pick_first over a shuffled address list.
const serviceConfig = `{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`

var seq atomic.Int64

// Window is the flow-control window of a proxy's control-plane stream and
// connection. A fixed window turns off gRPC's bandwidth estimation, which
// answers every burst of data with a PING: on a control plane serving
// thousands of proxies, each push would cost one more frame to read, one
// PING ACK to write and one more system call per proxy, for a window that
// xDS responses (one at a time, rarely above a megabyte) do not need to
// grow.
const Window = 1 << 20

// Dial returns the target and dial options for addr: "host:port",
// "host:port,host:port,...", or any gRPC target (dns:///name:port and
// the like), which is passed through.
func Dial(addr string) (string, []grpc.DialOption, error) {
	addrs, err := Split(addr)
	if err != nil {
		return "", nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithInitialWindowSize(Window),
		grpc.WithInitialConnWindowSize(Window),
	}
	if len(addrs) == 1 {
		// grpc.NewClient resolves a bare host:port with DNS and
		// re-resolves it when connections fail: every address of the
		// name is a replica to fail over to.
		return addrs[0], opts, nil
	}
	scheme := fmt.Sprintf("meshlens-replicas-%d", seq.Add(1))
	r := manual.NewBuilderWithScheme(scheme)
	state := resolver.State{}
	for _, a := range addrs {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(state)
	return scheme + ":///control-plane", append(opts, grpc.WithResolvers(r)), nil
}

// Split parses a comma-separated list of addresses; each must be
// host:port unless the whole value is one gRPC target with a scheme.
func Split(addr string) ([]string, error) {
	if addr == "" {
		return nil, fmt.Errorf("control plane address: is empty")
	}
	if strings.Contains(addr, "://") && !strings.Contains(addr, ",") {
		return []string{addr}, nil
	}
	var out []string
	for _, a := range strings.Split(addr, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("control plane address %q: %q is not host:port", addr, a)
		}
		out = append(out, a)
	}
	return out, nil
}
