package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/tapwire"
)

// `meshlens tap vn/NAME` is Linkerd's tap: a sample of the live requests
// of a virtual node's or gateway's proxies, one line per request, from the
// control plane's GET /v1/tap.

func newTapCmd(e *env) *cobra.Command {
	var (
		output string
		p      tapwire.Params
	)
	cmd := &cobra.Command{
		Use:   "tap vn/NAME | vg/NAME",
		Short: "Stream a sample of the live requests of a virtual node's or gateway's proxies",
		Long: "Stream a sample of the live requests seen by the proxies of a virtual node (vn/NAME) or\n" +
			"virtual gateway (vg/NAME): method, authority, path, status, latency, source, destination,\n" +
			"route, response flags and upstream host, one line per request. The tap ends after --max\n" +
			"requests or --duration. Header values are redacted unless --show-headers, and headers\n" +
			"that carry credentials (authorization, cookie, ...) are always redacted.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, ok := strings.Cut(args[0], "/")
			if !ok || name == "" {
				return usagef("%q: want vn/NAME or vg/NAME", args[0])
			}
			k, err := v1alpha1.ParseKind(kind)
			if err != nil || (k != v1alpha1.KindVirtualNode && k != v1alpha1.KindVirtualGateway) {
				return usagef("%q: the kind must be vn (virtualNode) or vg (virtualGateway)", args[0])
			}
			mesh, _ := cmd.Flags().GetString("mesh")
			if mesh == "" {
				mesh = e.getenv("MESHLENS_MESH")
			}
			if mesh == "" {
				return usagef("--mesh is required (or set MESHLENS_MESH)")
			}
			switch output {
			case "", "table", "json":
			default:
				return usagef("-o %q: want table or json", output)
			}
			if p.Max < 0 || p.Max > tapwire.MaxEvents {
				return usagef("--max %d: want 0 to %d", p.Max, tapwire.MaxEvents)
			}
			if p.Duration <= 0 || p.Duration > tapwire.MaxDuration {
				return usagef("--duration %s: want more than 0 and at most %s", p.Duration, tapwire.MaxDuration)
			}
			c, err := client(cmd, e)
			if err != nil {
				return err
			}
			q := p.Query()
			q.Set("mesh", mesh)
			q.Set("kind", strings.ToLower(string(k[:1]))+string(k[1:]))
			q.Set("name", name)
			return c.Tap(cmd.Context(), q, func(ev *tapwire.Event) error {
				if ev.Error != "" {
					fmt.Fprintf(e.stderr, "tap: proxy %s: %s\n", ev.Proxy, ev.Error)
					return nil
				}
				if output == "json" {
					b, err := json.Marshal(ev)
					if err != nil {
						return runError{err}
					}
					fmt.Fprintf(e.stdout, "%s\n", b)
					return nil
				}
				fmt.Fprintln(e.stdout, tapLine(ev))
				return nil
			})
		},
	}
	cmd.Flags().StringP("mesh", "m", "", "mesh of the virtual node or gateway (default $MESHLENS_MESH)")
	cmd.Flags().IntVar(&p.Max, "max", 0, "end the tap after this many requests (0: at --duration)")
	cmd.Flags().DurationVar(&p.Duration, "duration", tapwire.DefaultDuration, "end the tap after this long (at most 10m)")
	cmd.Flags().StringVar(&p.Filter.PathPrefix, "path-prefix", "", "only requests whose path starts with this")
	cmd.Flags().StringVar(&p.Filter.Method, "method", "", "only requests with this method")
	cmd.Flags().StringVar(&p.Filter.Authority, "authority", "", "only requests to this authority (Host)")
	cmd.Flags().BoolVar(&p.Filter.ShowHeaders, "show-headers", false, "show request header values (never those carrying credentials)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// tapLine is one request as `linkerd tap` prints it: key=value fields.
func tapLine(ev *tapwire.Event) string {
	var b strings.Builder
	b.WriteString(ev.Time.Local().Format("15:04:05.000"))
	fmt.Fprintf(&b, " %s %s %s%s", ev.Direction, ev.Method, ev.Authority, ev.Path)
	fmt.Fprintf(&b, " :status=%d latency=%s", ev.Status, time.Duration(ev.LatencyMs*float64(time.Millisecond)).Round(time.Microsecond))
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	field("src", ev.Source)
	field("dst", ev.Destination)
	field("route", ev.Route)
	field("flags", ev.ResponseFlags)
	field("upstream", ev.UpstreamHost)
	field("proxy", ev.Proxy)
	if len(ev.Headers) > 0 {
		keys := make([]string, 0, len(ev.Headers))
		for k := range ev.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%s", k, strconv.Quote(ev.Headers[k]))
		}
	}
	return b.String()
}
