package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/meshlens/meshlens/internal/xdsproto"
)

// The admin endpoint's JSON documents are Envoy's envoy.admin.v3
// messages (ServerInfo, Clusters, Listeners, ConfigDump) as protojson
// writes them with proto field names: 64-bit integers as strings, enums
// by name, durations as "1.5s", timestamps in RFC 3339, an Any as its
// message with "@type" first. They are written here from plain structs,
// not from the generated admin types: those import Envoy's bootstrap
// and, through it, overload, metrics, tap and matcher packages that the
// proxy never decodes, whose code and registered descriptors an idle
// sidecar would carry (docs/design.md). The tests parse every document
// into the generated types with protojson.

// serverState is Envoy's envoy.admin.v3.ServerInfo.State; the numbers
// are the enum's (the server.state gauge).
type serverState int

const (
	stateLive            serverState = 0
	stateDraining        serverState = 1
	statePreInitializing serverState = 2
	stateInitializing    serverState = 3
)

func (s serverState) String() string {
	switch s {
	case stateLive:
		return "LIVE"
	case stateDraining:
		return "DRAINING"
	case statePreInitializing:
		return "PRE_INITIALIZING"
	case stateInitializing:
		return "INITIALIZING"
	}
	return strconv.Itoa(int(s))
}

func (s serverState) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// writeAdminJSON writes v indented, one field per line, so that `grep
// state` finds the state's own line, as Envoy's admin does.
func writeAdminJSON(w http.ResponseWriter, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.Bytes())
}

// pbDuration is a google.protobuf.Duration in protojson's form.
type pbDuration time.Duration

func (d pbDuration) MarshalJSON() ([]byte, error) {
	s := strconv.FormatFloat(time.Duration(d).Seconds(), 'f', -1, 64) + "s"
	return json.Marshal(s)
}

// pbTime is a google.protobuf.Timestamp in protojson's form.
type pbTime time.Time

func (t pbTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Time(t).UTC().Format(time.RFC3339Nano))
}

// pbAny is a google.protobuf.Any holding m, in protojson's form.
type pbAny struct{ m xdsproto.Message }

func (a pbAny) MarshalJSON() ([]byte, error) {
	body, err := xdsproto.JSON(a.m)
	if err != nil {
		return nil, fmt.Errorf("config dump: %s: %w", a.m.XDSTypeName(), err)
	}
	typ, _ := json.Marshal(xdsproto.TypeURL(a.m))
	out := append([]byte(`{"@type":`), typ...)
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}

// typed is a message of the admin's own inside an Any: its fields after
// "@type".
type typed struct {
	typeURL string
	fields  any
}

func (t typed) MarshalJSON() ([]byte, error) {
	body, err := json.Marshal(t.fields)
	if err != nil {
		return nil, err
	}
	head, _ := json.Marshal(t.typeURL)
	out := append([]byte(`{"@type":`), head...)
	if len(body) > 2 {
		out = append(out, ',')
		out = append(out, body[1:]...)
	} else {
		out = append(out, '}')
	}
	return out, nil
}

// envoy.admin.v3.ServerInfo and what it holds.
type serverInfoJSON struct {
	Version            string                 `json:"version"`
	State              serverState            `json:"state"`
	HotRestartVersion  string                 `json:"hot_restart_version"`
	CommandLineOptions commandLineOptionsJSON `json:"command_line_options"`
	Node               nodeJSON               `json:"node"`
	UptimeCurrentEpoch pbDuration             `json:"uptime_current_epoch"`
	UptimeAllEpochs    pbDuration             `json:"uptime_all_epochs"`
}

type commandLineOptionsJSON struct {
	BaseID         string     `json:"base_id"`
	Concurrency    uint32     `json:"concurrency"`
	ConfigPath     string     `json:"config_path"`
	ServiceCluster string     `json:"service_cluster"`
	ServiceNode    string     `json:"service_node"`
	DrainTime      pbDuration `json:"drain_time"`
	Mode           string     `json:"mode"`
}

type nodeJSON struct {
	ID       string            `json:"id"`
	Cluster  string            `json:"cluster"`
	Metadata map[string]string `json:"metadata"`
}

// envoy.config.core.v3.Address with a socket address.
type addressJSON struct {
	SocketAddress socketAddressJSON `json:"socket_address"`
}

type socketAddressJSON struct {
	Address   string `json:"address,omitempty"`
	PortValue uint32 `json:"port_value,omitempty"`
}

// socketAddress renders host:port as Envoy's Address.
func socketAddress(hostport string) addressJSON {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	pv, _ := strconv.ParseUint(port, 10, 32)
	return addressJSON{SocketAddress: socketAddressJSON{Address: host, PortValue: uint32(pv)}}
}

// envoy.admin.v3.Clusters and what it holds.
type clustersJSON struct {
	ClusterStatuses []clusterStatusJSON `json:"cluster_statuses,omitempty"`
}

type clusterStatusJSON struct {
	Name              string           `json:"name,omitempty"`
	AddedViaAPI       bool             `json:"added_via_api,omitempty"`
	HostStatuses      []hostStatusJSON `json:"host_statuses,omitempty"`
	ObservabilityName string           `json:"observability_name,omitempty"`
	EDSServiceName    string           `json:"eds_service_name,omitempty"`
}

type hostStatusJSON struct {
	Address      addressJSON          `json:"address"`
	Stats        []simpleMetricJSON   `json:"stats,omitempty"`
	HealthStatus hostHealthStatusJSON `json:"health_status"`
	Weight       uint32               `json:"weight,omitempty"`
	Hostname     string               `json:"hostname,omitempty"`
	Priority     uint32               `json:"priority,omitempty"`
	Locality     *localityJSON        `json:"locality,omitempty"`
}

type simpleMetricJSON struct {
	Type  string `json:"type,omitempty"`
	Value uint64 `json:"value,string,omitempty"`
	Name  string `json:"name,omitempty"`
}

type hostHealthStatusJSON struct {
	FailedActiveHealthCheck bool   `json:"failed_active_health_check,omitempty"`
	FailedOutlierCheck      bool   `json:"failed_outlier_check,omitempty"`
	EDSHealthStatus         string `json:"eds_health_status,omitempty"`
	PendingActiveHC         bool   `json:"pending_active_hc,omitempty"`
}

type localityJSON struct {
	Zone string `json:"zone,omitempty"`
}

// envoy.admin.v3.Listeners and what it holds.
type listenersJSON struct {
	ListenerStatuses []listenerStatusJSON `json:"listener_statuses,omitempty"`
}

type listenerStatusJSON struct {
	Name                     string        `json:"name,omitempty"`
	LocalAddress             addressJSON   `json:"local_address"`
	AdditionalLocalAddresses []addressJSON `json:"additional_local_addresses,omitempty"`
}

// envoy.admin.v3.ConfigDump and its sections.
type configDumpJSON struct {
	Configs []typed `json:"configs,omitempty"`
}

const adminTypes = "type.googleapis.com/envoy.admin.v3."

type clustersConfigDumpJSON struct {
	VersionInfo           string               `json:"version_info,omitempty"`
	DynamicActiveClusters []dynamicClusterJSON `json:"dynamic_active_clusters,omitempty"`
}

type dynamicClusterJSON struct {
	VersionInfo string `json:"version_info,omitempty"`
	Cluster     pbAny  `json:"cluster"`
	LastUpdated pbTime `json:"last_updated"`
}

type endpointsConfigDumpJSON struct {
	DynamicEndpointConfigs []dynamicEndpointConfigJSON `json:"dynamic_endpoint_configs,omitempty"`
}

type dynamicEndpointConfigJSON struct {
	VersionInfo    string `json:"version_info,omitempty"`
	EndpointConfig pbAny  `json:"endpoint_config"`
	LastUpdated    pbTime `json:"last_updated"`
}

type listenersConfigDumpJSON struct {
	VersionInfo      string                `json:"version_info,omitempty"`
	DynamicListeners []dynamicListenerJSON `json:"dynamic_listeners,omitempty"`
}

type dynamicListenerJSON struct {
	Name        string                   `json:"name,omitempty"`
	ActiveState dynamicListenerStateJSON `json:"active_state"`
}

type dynamicListenerStateJSON struct {
	VersionInfo string `json:"version_info,omitempty"`
	Listener    pbAny  `json:"listener"`
	LastUpdated pbTime `json:"last_updated"`
}

type routesConfigDumpJSON struct {
	DynamicRouteConfigs []dynamicRouteConfigJSON `json:"dynamic_route_configs,omitempty"`
}

type dynamicRouteConfigJSON struct {
	VersionInfo string `json:"version_info,omitempty"`
	RouteConfig pbAny  `json:"route_config"`
	LastUpdated pbTime `json:"last_updated"`
}
