package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	restv1 "github.com/meshlens/meshlens/api/rest/v1"
)

// `meshlens get proxies` is the control plane's view of its data planes,
// as `istioctl proxy-status` is Istio's: for each connected proxy, the
// state of every xDS type against the latest version of its view, and
// the last configuration it rejected with the reason it gave.

// isProxiesKind reports whether a `get` KIND names the connected proxies.
func isProxiesKind(kind string) bool {
	switch strings.ToLower(kind) {
	case "proxies", "proxy", "proxy-status", "ps":
		return true
	}
	return false
}

// xdsColumns are the types shown, in istioctl's order.
var xdsColumns = []struct{ name, typeURL string }{
	{"CDS", resource.ClusterType}, {"LDS", resource.ListenerType}, {"EDS", resource.EndpointType}, {"RDS", resource.RouteType},
}

// runGetProxies prints the connected proxies: every one, those of --mesh,
// or the one named by NAME (its name, or its full node id).
func runGetProxies(cmd *cobra.Command, e *env, args []string, output string) error {
	if len(args) > 1 {
		return usagef("too many arguments: want proxies [NAME]")
	}
	switch output {
	case "", "table", "json", "yaml":
	default:
		return usagef("-o %q: want table, json or yaml", output)
	}
	c, err := client(cmd, e)
	if err != nil {
		return err
	}
	all, err := c.Proxies(cmd.Context())
	if err != nil {
		return err
	}
	mesh, _ := cmd.Flags().GetString("mesh")
	items := []restv1.Proxy{}
	for _, p := range all {
		if mesh != "" && p.Mesh != mesh {
			continue
		}
		if len(args) == 1 && args[0] != p.Name && args[0] != p.ID {
			continue
		}
		items = append(items, p)
	}
	switch output {
	case "json":
		b, err := json.MarshalIndent(items, "", "  ")
		if err != nil {
			return runError{err}
		}
		fmt.Fprintf(e.stdout, "%s\n", b)
		return nil
	case "yaml":
		j, err := json.Marshal(items)
		if err != nil {
			return runError{err}
		}
		b, err := v1alpha1.JSONToYAML(j)
		if err != nil {
			return runError{err}
		}
		_, _ = e.stdout.Write(b)
		return nil
	}
	if len(items) == 0 {
		fmt.Fprintln(e.stderr, "no proxies connected")
		return nil
	}
	printProxies(e.stdout, items)
	return nil
}

// maxNackWidth bounds the LAST NACK column; -o yaml shows it whole.
const maxNackWidth = 80

// printProxies writes the table of `get proxies`.
func printProxies(w io.Writer, items []restv1.Proxy) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{"NAME", "FLAVOUR", "AGENT"}
	for _, col := range xdsColumns {
		head = append(head, col.name)
	}
	head = append(head, "IN SYNC", "NACKS", "LAST NACK")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, p := range items {
		row := []string{p.Mesh + "/" + p.Kind + "/" + p.Name, p.Flavour, orDash(p.UserAgent)}
		for _, col := range xdsColumns {
			row = append(row, syncCell(p, col.typeURL))
		}
		inSync := "yes"
		if !p.InSync {
			inSync = "no"
		}
		row = append(row, inSync, fmt.Sprint(p.Nacks), lastNackCell(p))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
}

// syncCell is a type's state with the version accepted, and the latest
// when that is another: "SYNCED (d38bf054)", "STALE (0be86e00, latest
// cf3aa4e2)", "NOT SENT".
func syncCell(p restv1.Proxy, typeURL string) string {
	state := p.Sync[typeURL]
	if state == "" {
		state = restv1.SyncNotSent
	}
	if state == restv1.SyncNotSent {
		return state
	}
	acked, latest := shortVersion(orDash(p.Acked[typeURL])), shortVersion(p.Latest[typeURL])
	if acked == latest {
		return fmt.Sprintf("%s (%s)", state, acked)
	}
	return fmt.Sprintf("%s (%s, latest %s)", state, acked, latest)
}

// lastNackCell is "<TYPE> <version>: <reason>", on one line and bounded.
func lastNackCell(p restv1.Proxy) string {
	if p.LastNack == "" {
		return "-"
	}
	typ := p.LastNackType
	for _, col := range xdsColumns {
		if col.typeURL == typ {
			typ = col.name
		}
	}
	s := strings.Join(strings.Fields(fmt.Sprintf("%s %s: %s", typ, shortVersion(p.LastNackVersion), p.LastNack)), " ")
	if r := []rune(s); len(r) > maxNackWidth {
		s = string(r[:maxNackWidth-3]) + "..."
	}
	return s
}

// shortVersion abbreviates a version hash to its first 8 characters, as
// git does, so that the table fits; -o json and yaml show it whole.
func shortVersion(v string) string {
	if len(v) > 12 {
		return v[:8]
	}
	return v
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
