// Package xds translates meshlens resources (App Mesh's model) into Envoy
// xDS v3 resources and serves them over ADS with go-control-plane.
//
// Translation is per data plane: a virtual node's sidecar (App Mesh's
// listeners on 15000 and 15001 and their routes and clusters), a virtual
// gateway, or a proxyless gRPC client (api_listeners named after the
// authority it dials). Resource names are App Mesh's, so dashboards and
// scripts keep working; one file per xDS type holds the translation
// (listener.go, route.go, cluster.go, endpoint.go), filters.go the HTTP
// and network filters of the meshlens extension (fault, local rate limit,
// CORS, gRPC-Web), and docs/xds.md says what every field becomes.
//
// Serving (server.go) builds a view only for data planes that connect,
// shares identical resources between views of one input, versions each
// type by a hash of its content so unchanged types are not resent, keeps
// clusters alive while routes may still name them, and records ACKs and
// NACKs per node.
package xds
