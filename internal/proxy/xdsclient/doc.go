// Package xdsclient is the proxy's xDS v3 client: one state-of-the-world
// ADS stream (envoy.service.discovery.v3.AggregatedDiscoveryService) to the
// control plane, whose responses it turns into *table.Snapshot values for
// the data path.
//
// # Subscriptions
//
// On every stream the client subscribes to clusters (CDS) and listeners
// (LDS) as wildcards (no resource names), then to the EDS assignments its
// EDS clusters name (eds_cluster_config.service_name, else the cluster
// name) and to the route configurations its listeners' connection
// managers name over RDS. Those two subscriptions follow every accepted
// CDS and LDS response; a resource that drops out of them is forgotten.
// api_listener listeners (for proxyless gRPC clients) are skipped, and so
// are their route configurations.
//
// # Accepting, warming, ACK and NACK
//
// The client keeps the last accepted resources of each type. For a
// response of type T it builds the tentative set (the accepted set with
// T's resources replaced: wholly for LDS and CDS, which are full-state,
// merged by name for RDS and EDS) and then:
//
//  1. A response that does not decode, holds a resource twice or a
//     resource that fails its proto validation is NACKed.
//  2. The tentative set is complete when LDS and CDS have both been
//     received, every route configuration a listener names has been
//     received and every EDS cluster's assignment has been received (an
//     empty assignment counts).
//  3. Complete: it is compiled (table.Compile) and handed to apply. If
//     either fails, the response is NACKed with the error and the
//     previous snapshot stays in the data path; otherwise it is ACKed and
//     becomes the accepted set.
//  4. Incomplete (warming, as Envoy warms clusters and listeners): it is
//     compiled with missing references allowed, only to find errors. An
//     error NACKs the response; otherwise it is ACKed and accepted, the
//     new subscriptions are requested, and nothing is applied until a
//     later response completes the set. If that completing response makes
//     the set fail to compile, that response is the one NACKed.
//  5. With Config.WarmingTimeout set, a set still incomplete after that
//     long is applied as it is: a missing assignment leaves its cluster
//     without endpoints, a missing route configuration routes nothing
//     (Envoy's initial_fetch_timeout). Zero waits forever, App Mesh's
//     default.
//
// An ACK carries the response's version_info and nonce; a NACK carries
// the last accepted version_info of the type, the response's nonce and an
// error_detail with code INVALID_ARGUMENT and the error text. A response
// whose resources equal the accepted ones (a resend after a reconnect, or
// a server that bumps the version of every type on any change) is ACKed
// and its version recorded, without building a new snapshot; a
// snapshot's Versions can therefore lag behind Client.Versions for types
// whose content did not change. Responses of types the client did not ask
// for are ignored.
//
// # Reconnecting
//
// When the stream or the connection fails, the client retries with
// exponential backoff (Config.Backoff: from 500ms doubling to 30s, ±20%
// jitter), reset once a stream has delivered a response. Meanwhile the
// data path keeps serving the last applied snapshot: the client simply
// does not call apply. A new stream resubscribes to everything at once,
// sending the last accepted version of each type so that a server that
// honours it can skip what did not change. Connected, LastError and
// Versions report the state for stats and the admin interface.
package xdsclient
