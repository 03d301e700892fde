// Package examples holds example meshes as documents users can apply, and
// embeds them so the demo applies exactly what the docs show.
package examples

import _ "embed"

// Greeter is examples/greeter.yaml: the demo's mesh.
//
//go:embed greeter.yaml
var Greeter []byte
