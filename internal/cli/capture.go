package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/internal/capture"
)

// captureFlags are `meshlens capture`'s flags, named after ECS's
// proxyConfiguration properties, each standing for App Mesh's variable.
var captureFlags = []struct{ flag, env, usage string }{
	{"app-ports", capture.EnvAppPorts, "AppPorts: the application's TCP ports, redirected inbound to the proxy (comma-separated)"},
	{"proxy-ingress-port", capture.EnvIngressPort, "ProxyIngressPort (default 15000)"},
	{"proxy-egress-port", capture.EnvEgressPort, "ProxyEgressPort (default 15001)"},
	{"ignored-uid", capture.EnvIgnoreUID, "IgnoredUID: the proxy's user, whose traffic is never captured (default 1337 when no GID is given)"},
	{"ignored-gid", capture.EnvIgnoreGID, "IgnoredGID: the proxy's group, whose traffic is never captured"},
	{"egress-ignored-ips", capture.EnvEgressIgnoredIP, "EgressIgnoredIPs: destinations (IPs or CIDRs) left alone (default 169.254.170.2,169.254.169.254; none for no address)"},
	{"egress-ignored-ports", capture.EnvEgressIgnoredPorts, "EgressIgnoredPorts: destination ports left alone (22 always is)"},
	{"dns-port", capture.EnvDNSPort, "the proxy's DNS port, where the application's DNS queries go (default 15053; 0 or off: DNS is not captured)"},
	{"iptables", capture.EnvIptables, "the iptables binary (iptables, iptables-nft, iptables-legacy or a path; default: the backend that already holds this namespace's rules)"},
}

func newCaptureCmd(e *env) *cobra.Command {
	var remove, print bool
	vals := make([]string, len(captureFlags))
	cmd := &cobra.Command{
		Use:   "capture",
		Short: "Install (or --remove) the iptables rules that send the application's traffic through its sidecar",
		Long: "capture installs the iptables rules ECS's proxyConfiguration (type APPMESH) installed,\n" +
			"from App Mesh's variables (APPMESH_APP_PORTS, APPMESH_ENVOY_INGRESS_PORT, APPMESH_ENVOY_EGRESS_PORT,\n" +
			"APPMESH_IGNORE_UID, APPMESH_IGNORE_GID, APPMESH_EGRESS_IGNORED_IP, APPMESH_EGRESS_IGNORED_PORTS) or the\n" +
			"flags below, and exits: run it as root in an init container before the sidecar starts. It\n" +
			"replaces rules a previous run left. --remove deletes them and leaves every other rule as it was.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set := map[string]string{}
			for i, f := range captureFlags {
				if cmd.Flags().Changed(f.flag) {
					set[f.env] = vals[i]
				}
			}
			getenv := func(k string) string {
				if v, ok := set[k]; ok {
					return v
				}
				return e.getenv(k)
			}
			return runCapture(cmd.Context(), e, getenv, set, remove, print)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&remove, "remove", false, "remove the rules instead of installing them")
	fl.BoolVar(&print, "print", false, "print the rules (iptables-restore input) and change nothing")
	for i, f := range captureFlags {
		fl.StringVar(&vals[i], f.flag, "", f.usage+" ($"+f.env+")")
	}
	return cmd
}

func runCapture(ctx context.Context, e *env, getenv func(string) string, fromFlags map[string]string, remove, print bool) error {
	var cc capture.Config
	if !remove {
		var err error
		if cc, err = capture.FromEnv(getenv); err != nil {
			// Name the flag when the value came from one.
			msg := err.Error()
			for _, f := range captureFlags {
				if _, ok := fromFlags[f.env]; ok && strings.HasPrefix(msg, f.env+":") {
					msg = "--" + f.flag + strings.TrimPrefix(msg, f.env)
				}
			}
			return usagef("%s", msg)
		}
		for _, w := range capture.IgnoredEnv(getenv) {
			fmt.Fprintln(e.stderr, "warning:", w)
		}
		if print {
			fmt.Fprint(e.stdout, capture.Rules(cc))
			return nil
		}
	}
	b, err := capture.Detect(ctx, nil, nil, getenv(capture.EnvIptables))
	if err != nil {
		return runError{err}
	}
	if remove {
		if err := b.Remove(ctx); err != nil {
			return runError{err}
		}
		fmt.Fprintf(e.stderr, "capture rules removed (%s, %s)\n", b.Iptables, b.Mode)
		return nil
	}
	rules, err := b.Install(ctx, cc)
	if err != nil {
		return runError{err}
	}
	fmt.Fprintf(e.stderr, "capture rules installed (%s, %s):\n", b.Iptables, b.Mode)
	fmt.Fprint(e.stdout, rules)
	return nil
}
