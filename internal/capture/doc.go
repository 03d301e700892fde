// Package capture installs and removes the iptables rules that send a
// task's or pod's traffic through its meshlens sidecar, as ECS's
// proxyConfiguration (type APPMESH) and App Mesh's proxy init container
// did: inbound TCP to the application's ports is redirected to the
// sidecar's ingress port (15000), outbound TCP to its egress port (15001),
// except what the sidecar itself sends (its UID or GID), loopback and
// other local destinations, and the ignored addresses and ports; and, as
// meshlens adds, the application's DNS queries (UDP and TCP port 53) go to
// the sidecar's DNS port, where mesh names resolve (package meshdns).
//
// The settings come from App Mesh's environment variables
// (APPMESH_APP_PORTS, APPMESH_ENVOY_INGRESS_PORT, ... : config.go), so task
// definitions and manifests carry over.
//
// The rules are installed with the iptables binary, not over netlink
// (github.com/google/nftables), for three reasons: the binary speaks both
// of Linux's backends (iptables-nft and iptables-legacy), and rules must
// be written with the one the host already uses, since the two do not
// order against each other (detect.go picks it as Kubernetes' iptables
// wrapper does); the rules are the same text operators already read with
// `iptables -t nat -S` from App Mesh's and Istio's init containers; and
// owner, addrtype, multiport and REDIRECT matches would otherwise be
// hand-assembled nftables expressions. The cost is one binary in the
// image, run only at start and at exit.
//
// Every rule lives in chains of our own (MESHLENS_INBOUND,
// MESHLENS_OUTBOUND), entered from PREROUTING and OUTPUT by one
// unconditional jump each. Installing first removes whatever a previous
// run left (a crashed sidecar never removed its rules), then writes the
// chains and jumps in one iptables-restore transaction, so installing
// twice yields the same rules once; removing deletes the jumps and the
// chains and leaves every other rule as it was.
package capture
