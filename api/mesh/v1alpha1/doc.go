// Package v1alpha1 holds the meshlens resource model: App Mesh's Mesh,
// VirtualNode, VirtualService, VirtualRouter, Route, VirtualGateway and
// GatewayRoute with App Mesh's field names and JSON shapes, the decoding of
// documents (meshlens YAML/JSON and App Mesh's own API and describe-* JSON),
// and validation with errors that name the field path. The meshlens
// extension (meshlens.go) adds, under one object named meshlens, the
// policies App Mesh never had: fault injection, rate limits, CORS and
// gRPC-Web.
//
// It is the one public API of the module: the control plane, the CLI and
// any tooling that writes meshlens documents share it.
package v1alpha1
