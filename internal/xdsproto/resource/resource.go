// Package resource names the xDS resource types the proxy subscribes to
// by their type URLs, as go-control-plane's pkg/resource/v3 does, without
// linking go-control-plane (internal/xdsproto).
package resource

// Type URLs of the xDS resources.
const (
	apiTypePrefix = "type.googleapis.com/"
	ListenerType  = apiTypePrefix + "envoy.config.listener.v3.Listener"
	RouteType     = apiTypePrefix + "envoy.config.route.v3.RouteConfiguration"
	ClusterType   = apiTypePrefix + "envoy.config.cluster.v3.Cluster"
	EndpointType  = apiTypePrefix + "envoy.config.endpoint.v3.ClusterLoadAssignment"
	SecretType    = apiTypePrefix + "envoy.extensions.transport_sockets.tls.v3.Secret"
)
