// Package cli implements the meshlens command line: the server, the
// resource commands (apply, get, describe, delete) and the proxy. Each
// command parses its flags and calls into the package that does the work
// (`proxy` is internal/proxycmd's command, which fills a sidecar.Config and calls sidecar.Run); exit codes are
// stable so scripts can branch on them.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/apiclient"
	"github.com/meshlens/meshlens/internal/proxycmd"
	"github.com/meshlens/meshlens/internal/sidecar"
)

// Exit codes. They are part of the CLI's contract (docs/cli.md).
const (
	ExitOK          = 0
	ExitError       = 1 // anything not listed below
	ExitUsage       = 2 // bad flags or arguments
	ExitNotFound    = 3 // the resource does not exist
	ExitInvalid     = 4 // the documents were rejected (BadRequestException)
	ExitConflict    = 5 // version conflict or resource in use
	ExitUnreachable = 6 // the control plane could not be reached
	ExitDenied      = 7 // no valid token (401) or one that does not allow the request (403)
)

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// ExitCode maps an error to the CLI's exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	if errors.Is(err, apiclient.ErrUnreachable) {
		return ExitUnreachable
	}
	var ae *restv1.Error
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusNotFound:
			return ExitNotFound
		case ae.Status == http.StatusConflict:
			return ExitConflict
		case ae.Status == http.StatusBadRequest || ae.Status == http.StatusRequestEntityTooLarge:
			return ExitInvalid
		case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
			return ExitDenied
		}
	}
	var de decodeError
	if errors.As(err, &de) {
		return ExitInvalid
	}
	return ExitError
}

// decodeError marks documents that could not be read locally.
type decodeError struct{ err error }

func (e decodeError) Error() string { return e.err.Error() }
func (e decodeError) Unwrap() error { return e.err }

// env is what commands read from the process: streams and environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// runSidecar runs `meshlens proxy`; nil is sidecar.Run.
	runSidecar func(context.Context, sidecar.Config) error
	// exec replaces the process, for `meshlens proxy --sysmon-awake`
	// (proxycmd.Env.Exec); nil never does.
	exec func(path string, argv, envv []string) error
}

// Main runs the command line with args (without the program name) and
// returns the exit code. It never replaces the process: `meshlens proxy`
// runs without --sysmon-awake's restart (MainProcess has it).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return MainProcess(ctx, args, stdin, stdout, stderr, nil)
}

// MainProcess is Main in the meshlens program, where `meshlens proxy` may
// replace the process with exec (syscall.Exec) to start again with the
// Go runtime's monitor kept awake (internal/sysmon).
func MainProcess(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, exec func(path string, argv, envv []string) error) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, exec: exec}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		// cobra's own flag and argument errors are usage errors.
		if !isOurs(err) {
			err = usageError{err}
		}
		fmt.Fprintln(stderr, "error:", err)
	}
	return ExitCode(err)
}

func isOurs(err error) bool {
	var ue usageError
	var ae *restv1.Error
	var de decodeError
	return errors.As(err, &ue) || errors.As(err, &ae) || errors.As(err, &de) || errors.Is(err, apiclient.ErrUnreachable) || errors.As(err, new(runError))
}

// runError marks failures while doing the work (not how it was asked).
type runError struct{ err error }

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "meshlens",
		Short:         "meshlens: an App Mesh compatible service mesh with visibility built in",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	proxycmd.AddGlobalFlags(root.PersistentFlags())
	root.AddCommand(newServerCmd(e), newApplyCmd(e), newGetCmd(e), newDescribeCmd(e), newDeleteCmd(e), newVersionCmd(e), newDemoCmd(e), newDemoAppCmd(e), newProxyCmd(e), newCaptureCmd(e), newTapCmd(e), newTokenCmd(e))
	return root
}

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the meshlens version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(e.stdout, "meshlens", Version)
			return nil
		},
	}
}

// serverURL is the control plane's API URL: --server, else
// $MESHLENS_SERVER, else the default.
func serverURL(cmd *cobra.Command, e *env) string {
	return proxycmd.ServerURL(cmd, e.getenv)
}

// flagOrEnv is a root flag's value, else the environment variable's.
func flagOrEnv(cmd *cobra.Command, e *env, flag, envVar string) string {
	v, _ := cmd.Flags().GetString(flag)
	if v == "" {
		v = e.getenv(envVar)
	}
	return v
}

func client(cmd *cobra.Command, e *env) (*apiclient.Client, error) {
	hc, err := apiclient.HTTPClient(flagOrEnv(cmd, e, "ca-file", "MESHLENS_CA_FILE"))
	if err != nil {
		return nil, usageError{fmt.Errorf("--ca-file: %w", err)}
	}
	c, err := apiclient.New(serverURL(cmd, e), hc)
	if err != nil {
		return nil, usageError{err}
	}
	c.Token = strings.TrimSpace(flagOrEnv(cmd, e, "token", "MESHLENS_TOKEN"))
	return c, nil
}

func logger(cmd *cobra.Command, w io.Writer) (*slog.Logger, error) {
	lv, _ := cmd.Flags().GetString("log-level")
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(lv))); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", lv)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), nil
}
