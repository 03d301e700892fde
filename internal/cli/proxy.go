package cli

import (
	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/internal/proxycmd"
	"github.com/meshlens/meshlens/internal/sidecar"
)

// newProxyCmd is `meshlens proxy`: the proxy command of internal/proxycmd
// (which meshlens-proxy runs on its own), its errors mapped to the CLI's
// exit codes.
func newProxyCmd(e *env) *cobra.Command {
	cmd := proxycmd.Command("proxy", proxycmd.Env{Getenv: e.getenv, Stdout: e.stdout, Stderr: e.stderr, Version: Version, Run: e.runSidecar, Exec: e.exec})
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		switch {
		case err == nil:
			return nil
		case sidecar.IsConfigError(err):
			return usageError{err}
		default:
			return runError{err}
		}
	}
	return cmd
}
