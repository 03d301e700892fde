package table

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCompileControlPlaneViews compiles every view the control plane's own
// golden tests produce (internal/xds/testdata) and records what the proxy
// makes of it. The files are read, not imported: the proxy and the control
// plane meet only at xDS.
func TestCompileControlPlaneViews(t *testing.T) {
	files, err := filepath.Glob("../../xds/testdata/*.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no control plane views in ../../xds/testdata")
	}
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".golden.yaml")
		t.Run(base, func(t *testing.T) {
			res := loadYAML(t, f)
			snap, err := Compile(res, CompileOptions{Gateway: strings.HasPrefix(base, "gateway")})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			golden(t, base+".table.golden", describe(snap))
		})
	}
}
