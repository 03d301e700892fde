// Package xdsmeta holds the names and metadata that are the contract
// between the control plane and the data plane: the resource names the
// control plane gives the listeners, routes and clusters it writes into
// xDS, and the filter_metadata it attaches to them, which the meshlens
// proxy reads back. Both sides import this package and never each other,
// so a name changed here changes on both sides at once.
//
// The names are App Mesh's, so dashboards, alarms and config-dump scripts
// written against App Mesh's Envoy keep working.
package xdsmeta
