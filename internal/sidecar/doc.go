// Package sidecar starts and runs the `meshlens proxy` process: a sidecar
// of one virtual node or a virtual gateway. It turns a Config (the command
// line) and the environment (App Mesh's Envoy variables, with a warning for
// each one it ignores) into a running proxy: the logger and stats sinks,
// the data plane (internal/proxy), its xDS client, and for a sidecar the
// instance registration with the control plane's REST API, renewed until
// shutdown. On SIGTERM it deregisters first, then drains.
//
// The CLI (internal/cli) only parses flags into a Config and calls Run.
package sidecar
