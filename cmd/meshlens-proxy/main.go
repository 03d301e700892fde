// Command meshlens-proxy is the meshlens sidecar and gateway on its own:
// `meshlens-proxy [flags]` is `meshlens proxy [flags]`, the same command
// (internal/proxycmd) with the same flags, environment and exit codes,
// in a binary that links the data plane only. An idle sidecar of it maps
// fewer pages of code and data than one of the full meshlens binary
// (docs/design.md). The boundary is checked by internal/archtest.
package main

import (
	"context"
	"os"
	"syscall"

	"github.com/meshlens/meshlens/internal/proxycmd"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(proxycmd.Main(context.Background(), os.Args[1:], proxycmd.Env{Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr, Version: version, Exec: syscall.Exec}))
}
