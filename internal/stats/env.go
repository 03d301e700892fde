package stats

import (
	"fmt"
	"strings"
)

// Environment variables App Mesh's Envoy image read for stats tags.
const (
	EnvEnableStatsTags        = "ENABLE_ENVOY_STATS_TAGS"
	EnvMetricExtensionVersion = "APPMESH_METRIC_EXTENSION_VERSION"
)

// ParseTruthy reads a boolean environment value the way App Mesh's
// agent did: 1/true/yes/on and 0/false/no/off (any case), empty meaning
// false. Anything else is an error, so a typo does not silently turn a
// feature off.
func ParseTruthy(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false, nil
	case "1", "true", "yes", "on":
		return true, nil
	}
	return false, fmt.Errorf("not a boolean: %q", v)
}

// MetricExtensionEnabled reports whether APPMESH_METRIC_EXTENSION_VERSION
// asks for App Mesh's metrics extension. Like App Mesh, only "1" does;
// the proxy then creates the appmesh.* stats with ScopeWithTags.
func MetricExtensionEnabled(getenv func(string) string) bool {
	return strings.TrimSpace(getenv(EnvMetricExtensionVersion)) == "1"
}

// FixedTagsFromEnv returns the tags App Mesh's image put on every stat of
// the proxy of the virtual node (or, with gateway, virtual gateway) name
// in mesh: appmesh.mesh and appmesh.virtual_node/virtual_gateway when
// ENABLE_ENVOY_STATS_TAGS is true, and Mesh and VirtualNode/VirtualGateway
// when the metrics extension is on. Pass them as Options.FixedTags.
func FixedTagsFromEnv(getenv func(string) string, mesh, name string, gateway bool) ([]Tag, error) {
	var tags []Tag
	on, err := ParseTruthy(getenv(EnvEnableStatsTags))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvEnableStatsTags, err)
	}
	if on {
		kind := TagAppMeshVirtualNode
		if gateway {
			kind = TagAppMeshVirtualGateway
		}
		tags = append(tags, Tag{TagAppMeshMesh, mesh}, Tag{kind, name})
	}
	if MetricExtensionEnabled(getenv) {
		kind := TagExtVirtualNode
		if gateway {
			kind = TagExtVirtualGateway
		}
		tags = append(tags, Tag{TagExtMesh, mesh}, Tag{kind, name})
	}
	return tags, nil
}
