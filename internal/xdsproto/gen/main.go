// Command gen writes internal/xdsproto's mirror packages: for every
// protobuf message the proxy reads or writes over xDS (and every message
// those reach through their fields), a plain Go struct with the same Go
// name, field names, oneof wrappers, enums and getters as
// go-control-plane's generated type, tagged for internal/xdsproto/wire,
// which encodes and decodes them.
//
// The mirrors exist so that the proxy binary does not link
// go-control-plane's generated packages, whose init registers every
// descriptor (docs/design.md, "a proxy without Envoy's generated types").
// This program links them, reads their descriptors and Go shapes through
// reflection, and writes source; it runs at development time only:
//
//	go run ./internal/xdsproto/gen
//
// internal/xdsproto's test fails when the checked-in mirrors differ from
// what it writes.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/meshlens/meshlens/internal/xdsproto/gen/mirror"
)

func main() {
	out := flag.String("out", "internal/xdsproto", "directory the mirror packages are written under")
	flag.Parse()
	files, err := mirror.Generate()
	if err != nil {
		log.Fatal(err)
	}
	for path, src := range files {
		p := filepath.Join(*out, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, src, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("wrote %d files under %s\n", len(files), *out)
}
