// Package router is the last HTTP filter of a chain, Envoy's
// envoy.filters.http.router: the connection manager (package hcm) hands
// it each routed request through hcm.Forwarder.
//
// Forward runs the retry loop (retryLoop, router.go) around the single
// attempt (try and attempt, side by side as Caddy's reverse proxy keeps
// them), with the replayable request body and the retry conditions in
// retry.go. Each attempt's outlier verdict (outcome.go) goes to the
// cluster's outlier detection; the answer is the upstream response
// (respond, response.go) or a local reply (replyFailure, through the
// HTTP filters' response phase: hcm.Exchange.Reply). It sees the
// downstream stream and the cluster's pools only through the stream
// interface (package codec/stream: a Downstream, an Upstream per
// attempt). Picking, pools, breakers and outlier detection are the
// cluster's (package cluster).
package router
