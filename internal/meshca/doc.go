// Package meshca is the mesh certificate authority of the control plane:
// one root per mesh (generated on first use, or the user's own from PEM
// files), issuing short-lived SPIFFE X.509 identities
// (spiffe://<mesh>/virtualNode/<name>, spiffe://<mesh>/virtualGateway/<name>)
// that are renewed at half of their validity.
//
// A generated root's private key is kept in the store sealed with
// AES-256-GCM under a key-encryption key the operator provides (a file or
// an environment variable): a store copied without that key does not
// reveal the CA. The authority refuses to start without one.
//
// Issued identities are what the xDS server hands to data planes over SDS;
// the package knows nothing of xDS.
package meshca
