package proxycmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/internal/sidecar"
)

// Exit codes of Main: those of `meshlens proxy` (docs/cli.md).
const (
	ExitOK    = 0
	ExitError = 1 // the sidecar failed while it ran
	ExitUsage = 2 // bad flags, or a configuration the sidecar cannot use
)

// Main runs the proxy command on its own, as meshlens-proxy, with args
// (without the program name) and returns the exit code: the one
// `meshlens proxy` returns for the same arguments. --version prints the
// version.
func Main(ctx context.Context, args []string, e Env) int {
	cmd := Command("meshlens-proxy", e)
	AddGlobalFlags(cmd.Flags())
	cmd.Version = e.Version
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	cmd.SetOut(e.Stdout)
	cmd.SetErr(e.Stderr)
	ran := false
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, a []string) error {
		ran = true
		return run(c, a)
	}
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(e.Stderr, "error:", err)
	if !ran || sidecar.IsConfigError(err) {
		// cobra's own flag and argument errors, and a configuration
		// refused before anything binds.
		return ExitUsage
	}
	return ExitError
}
