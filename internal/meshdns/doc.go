// Package meshdns is the sidecar's DNS server: it answers the names of the
// virtual services its proxy routes (A records, from a Table the sidecar
// rebuilds on every configuration) and forwards every other query to the
// resolvers the host had (/etc/resolv.conf), so that an application whose
// DNS traffic is captured (package capture) resolves
// greeting.demo.local without anything registered in a real DNS.
//
// A mesh name resolves to a stable address in 240.240.0.0/16 (VIPRange),
// the reserved range Istio's DNS proxy also uses for the same purpose: no
// host has such an address, so a connection to it is never local and
// capture's outbound rule (every non-local TCP destination) sends it to
// the egress listener without a rule of its own, where it is routed as
// App Mesh's Envoy routed: HTTP by its Host, TCP by its destination port.
// The address of a name is a hash of the name (table.go), so it does not
// change when other services come and go and an application's cached
// answer stays right.
//
// Packets are decoded and encoded with golang.org/x/net/dns/dnsmessage,
// the parser the standard library's resolver uses (miekg/dns, which the
// server used first, costs an idle sidecar most of a megabyte of memory
// for its tables of types); serving and forwarding are the standard
// library's. What is ours is the query validation (decode.go), the
// answers, the truncation of forwarded answers for UDP clients (wire.go:
// forwarded answers are passed on as the upstream sent them, cut at a
// record when too large), the reading of resolv.conf (resolvconf.go),
// all fuzzed, and the bounds: queries of at most MaxQuerySize bytes, a
// bounded number of queries in flight, a timeout on every upstream
// exchange and on every TCP connection.
package meshdns
