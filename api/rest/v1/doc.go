// Package restv1 holds the request and response bodies of the control
// plane's REST API under /v1 (docs/api.md): apply results, lists,
// descriptions, registered instances, connected proxies, error answers
// and the Warning header's form. The server (internal/controlplane)
// writes them and clients (the meshlens CLI, the sidecar's registration,
// any Go program) read them, so the two cannot drift apart.
//
// Like the resource model (api/mesh/v1alpha1) it is public: it imports
// nothing under internal/.
package restv1
