// Command meshlens is the meshlens service mesh: control plane, proxy,
// demo and CLI in one binary. All of it lives in internal/cli.
package main

import (
	"context"
	"os"
	"syscall"

	"github.com/meshlens/meshlens/internal/cli"
)

func main() {
	os.Exit(cli.MainProcess(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, syscall.Exec))
}
