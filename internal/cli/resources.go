package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	restv1 "github.com/meshlens/meshlens/api/rest/v1"
)

// maxInput bounds what apply reads from files and stdin.
const maxInput = 8 << 20

func newApplyCmd(e *env) *cobra.Command {
	var files []string
	var recursive, dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...]",
		Short: "Create or update resources from YAML or JSON documents, as one atomic batch",
		Long: "apply reads meshlens documents (YAML or JSON, several per file), App Mesh's own API\n" +
			"or describe-* JSON, or CloudFormation templates, and applies them all or none.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usagef("apply needs -f FILE, -f DIR or -f -")
			}
			body, err := readInputs(e, files, recursive)
			if err != nil {
				return err
			}
			// Decode locally first: a malformed file is reported without a
			// round trip, with the same messages the server gives.
			if _, err := v1alpha1.Decode(body); err != nil {
				return decodeError{err}
			}
			c, err := client(cmd, e)
			if err != nil {
				return err
			}
			resp, err := c.Apply(cmd.Context(), body, dryRun)
			if err != nil {
				return err
			}
			printWarnings(e.stderr, resp.Warnings)
			for _, r := range resp.Results {
				line := fmt.Sprintf("%s %s", describeKey(r.Resource.Key()), r.Op)
				if r.Resource.Metadata != nil && r.Resource.Metadata.Version > 0 {
					line += fmt.Sprintf(" (version %d)", r.Resource.Metadata.Version)
				}
				if resp.DryRun {
					line += " (dry run)"
				}
				fmt.Fprintln(e.stdout, line)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory (its .yaml, .yml and .json files) or - for stdin; repeatable")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "read directories recursively")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate against the server's state without writing")
	return cmd
}

// printWarnings prints what the control plane keeps but cannot translate
// or enforce, one "Warning:" line each on stderr, as kubectl prints
// admission warnings: output on stdout stays what it was.
func printWarnings(w io.Writer, warnings []string) {
	for _, msg := range warnings {
		fmt.Fprintln(w, "Warning: "+msg)
	}
}

// readInputs concatenates the documents of every input as one YAML stream.
func readInputs(e *env, inputs []string, recursive bool) ([]byte, error) {
	var paths []string
	var out bytes.Buffer
	for _, in := range inputs {
		if in == "-" {
			data, err := io.ReadAll(io.LimitReader(e.stdin, maxInput+1))
			if err != nil {
				return nil, runError{fmt.Errorf("read stdin: %w", err)}
			}
			if err := appendDoc(&out, "stdin", data); err != nil {
				return nil, err
			}
			continue
		}
		st, err := os.Stat(in)
		if err != nil {
			return nil, usagef("-f %s: %v", in, err)
		}
		if !st.IsDir() {
			paths = append(paths, in)
			continue
		}
		var found []string
		err = filepath.WalkDir(in, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && p != in && !recursive {
				return filepath.SkipDir
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					found = append(found, p)
				}
			}
			return nil
		})
		if err != nil {
			return nil, runError{fmt.Errorf("read %s: %w", in, err)}
		}
		sort.Strings(found)
		paths = append(paths, found...)
	}
	for _, p := range paths {
		data, err := readFileLimited(p)
		if err != nil {
			return nil, err
		}
		if err := appendDoc(&out, p, data); err != nil {
			return nil, err
		}
	}
	if out.Len() > maxInput {
		return nil, usagef("input: larger than %d bytes", maxInput)
	}
	return out.Bytes(), nil
}

func readFileLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, usagef("-f %s: %v", p, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInput+1))
	if err != nil {
		return nil, runError{fmt.Errorf("read %s: %w", p, err)}
	}
	return data, nil
}

// appendDoc adds one input's documents to the stream. Each input is
// decoded on its own first so that errors name the file; then its
// documents are re-encoded so JSON and CloudFormation inputs mix with YAML.
func appendDoc(out *bytes.Buffer, name string, data []byte) error {
	if len(data) > maxInput {
		return usagef("%s: larger than %d bytes", name, maxInput)
	}
	docs, err := v1alpha1.Decode(data)
	if err != nil {
		return decodeError{fmt.Errorf("%s: %w", name, err)}
	}
	if len(docs) == 0 {
		return nil
	}
	if out.Len() > 0 {
		out.WriteString("---\n")
	}
	if err := v1alpha1.Encode(out, docs, "yaml"); err != nil {
		return runError{fmt.Errorf("%s: %w", name, err)}
	}
	return nil
}

// kindAndKey reads KIND [NAME] and the scoping flags into a key.
func kindAndKey(cmd *cobra.Command, e *env, args []string, needName bool) (v1alpha1.Key, error) {
	if len(args) == 0 {
		return v1alpha1.Key{}, usagef("missing KIND: one of mesh, virtualnode (vn), virtualservice (vs), virtualrouter (vr), route (rt), virtualgateway (vg), gatewayroute (gr)")
	}
	kind, err := v1alpha1.ParseKind(args[0])
	if err != nil {
		return v1alpha1.Key{}, usageError{err}
	}
	k := v1alpha1.Key{Kind: kind}
	if len(args) > 1 {
		k.Name = args[1]
	}
	if len(args) > 2 {
		return k, usagef("too many arguments: want KIND [NAME]")
	}
	if needName && k.Name == "" {
		return k, usagef("missing NAME of the %s", kind)
	}
	if kind == v1alpha1.KindMesh {
		return k, nil
	}
	mesh, _ := cmd.Flags().GetString("mesh")
	if mesh == "" {
		mesh = e.getenv("MESHLENS_MESH")
	}
	if mesh == "" {
		return k, usagef("--mesh is required for %s (or set MESHLENS_MESH)", kind)
	}
	k.Mesh = mesh
	vr, _ := cmd.Flags().GetString("virtual-router")
	vg, _ := cmd.Flags().GetString("virtual-gateway")
	switch {
	case kind == v1alpha1.KindRoute:
		k.Parent = vr
	case kind == v1alpha1.KindGatewayRoute:
		k.Parent = vg
	case vr != "" || vg != "":
		return k, usagef("--virtual-router and --virtual-gateway apply only to routes and gateway routes")
	}
	return k, nil
}

func addScopeFlags(cmd *cobra.Command) {
	cmd.Flags().StringP("mesh", "m", "", "mesh of the resource (default $MESHLENS_MESH)")
	cmd.Flags().String("virtual-router", "", "virtual router of the routes")
	cmd.Flags().String("virtual-gateway", "", "virtual gateway of the gateway routes")
}

func newGetCmd(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List resources of a kind, or show one",
		Long: "KIND is accepted in any case, singular or plural, or by its short name:\n" +
			"mesh, virtualnode (vn), virtualservice (vs), virtualrouter (vr), route (rt),\n" +
			"virtualgateway (vg), gatewayroute (gr).\n" +
			"KIND proxies lists the data planes connected to the control plane and\n" +
			"whether each has the latest configuration (see docs/cli.md).",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && isProxiesKind(args[0]) {
				return runGetProxies(cmd, e, args[1:], output)
			}
			k, err := kindAndKey(cmd, e, args, false)
			if err != nil {
				return err
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
			c.OnWarning = func(msg string) { printWarnings(e.stderr, []string{msg}) }
			var items []*v1alpha1.Resource
			if k.Name != "" {
				r, err := c.Get(cmd.Context(), k)
				if err != nil {
					return err
				}
				items = []*v1alpha1.Resource{r}
			} else if items, err = c.List(cmd.Context(), k.Kind, k.Mesh, k.Parent); err != nil {
				return err
			}
			if output == "json" || output == "yaml" {
				if err := v1alpha1.Encode(e.stdout, items, output); err != nil {
					return runError{err}
				}
				return nil
			}
			if len(items) == 0 {
				fmt.Fprintf(e.stderr, "no %s found\n", k.Kind.Plural())
				return nil
			}
			printTable(e.stdout, k.Kind, items)
			return nil
		},
	}
	addScopeFlags(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml (json and yaml can be applied again)")
	return cmd
}

func printTable(w io.Writer, kind v1alpha1.Kind, items []*v1alpha1.Resource) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{"NAME"}
	switch kind {
	case v1alpha1.KindMesh:
	case v1alpha1.KindRoute:
		head = append(head, "MESH", "VIRTUAL ROUTER")
	case v1alpha1.KindGatewayRoute:
		head = append(head, "MESH", "VIRTUAL GATEWAY")
	default:
		head = append(head, "MESH")
	}
	head = append(head, "VERSION", "AGE")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range items {
		row := []string{r.Name}
		k := r.Key()
		if kind != v1alpha1.KindMesh {
			row = append(row, k.Mesh)
		}
		if k.Parent != "" {
			row = append(row, k.Parent)
		}
		version, age := "-", "-"
		if m := r.Metadata; m != nil {
			version = fmt.Sprint(m.Version)
			if !m.CreatedAt.IsZero() {
				age = shortDuration(time.Since(m.CreatedAt))
			}
		}
		row = append(row, version, age)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
}

func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func describeKey(k v1alpha1.Key) string {
	switch {
	case k.Kind == v1alpha1.KindMesh:
		return "mesh/" + k.Name
	case k.Parent != "":
		return strings.ToLower(string(k.Kind)) + "/" + k.Mesh + "/" + k.Parent + "/" + k.Name
	}
	return strings.ToLower(string(k.Kind)) + "/" + k.Mesh + "/" + k.Name
}

func newDescribeCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show a resource with what refers to it, its instances, endpoints and connected proxies",
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := kindAndKey(cmd, e, args, true)
			if err != nil {
				return err
			}
			c, err := client(cmd, e)
			if err != nil {
				return err
			}
			d, err := c.Describe(cmd.Context(), k)
			if err != nil {
				return err
			}
			printDescription(e.stdout, d)
			return nil
		},
	}
	addScopeFlags(cmd)
	return cmd
}

func printDescription(w io.Writer, d *restv1.Description) {
	r := d.Resource
	fmt.Fprintf(w, "Kind:       %s\nName:       %s\n", r.Kind, r.Name)
	k := r.Key()
	if k.Mesh != "" {
		fmt.Fprintf(w, "Mesh:       %s\n", k.Mesh)
	}
	if r.VirtualRouter != "" {
		fmt.Fprintf(w, "Router:     %s\n", r.VirtualRouter)
	}
	if r.VirtualGateway != "" {
		fmt.Fprintf(w, "Gateway:    %s\n", r.VirtualGateway)
	}
	if m := r.Metadata; m != nil {
		fmt.Fprintf(w, "ARN:        %s\nUID:        %s\nVersion:    %d\nCreated:    %s\nUpdated:    %s\n",
			m.Arn, m.UID, m.Version, m.CreatedAt.Format(time.RFC3339), m.LastUpdatedAt.Format(time.RFC3339))
	}
	if r.Status != nil {
		fmt.Fprintf(w, "Status:     %s\n", r.Status.Status)
	}
	fmt.Fprintln(w, "Spec:")
	var spec bytes.Buffer
	if err := v1alpha1.Encode(&spec, []*v1alpha1.Resource{r}, "yaml"); err == nil {
		inSpec := false
		for _, line := range strings.Split(spec.String(), "\n") {
			if strings.HasPrefix(line, "spec:") {
				inSpec = true
				continue
			}
			if inSpec && line != "" && !strings.HasPrefix(line, " ") {
				inSpec = false
			}
			if inSpec && line != "" {
				fmt.Fprintln(w, "  "+line)
			}
		}
	}
	if len(d.Warnings) > 0 {
		fmt.Fprintln(w, "Warnings:")
		for _, msg := range d.Warnings {
			fmt.Fprintln(w, "  "+msg)
		}
	}
	fmt.Fprintln(w, "Referred by:")
	if len(d.ReferredBy) == 0 {
		fmt.Fprintln(w, "  (nothing)")
	}
	for _, ref := range d.ReferredBy {
		fmt.Fprintln(w, "  "+ref.String())
	}
	if r.Kind == v1alpha1.KindVirtualNode {
		fmt.Fprintln(w, "Instances:")
		if len(d.Instances) == 0 {
			fmt.Fprintln(w, "  (none registered)")
		}
		for _, in := range d.Instances {
			fmt.Fprintf(w, "  %s  %s:%d  %s  expires %s\n", in.ID, in.Address, in.Port, in.HealthStatus, in.ExpiresAt.Format(time.RFC3339))
		}
		fmt.Fprintln(w, "Endpoints:")
		if len(d.Endpoints) == 0 {
			fmt.Fprintln(w, "  (none)")
		}
		for _, ep := range d.Endpoints {
			health := "healthy"
			if !ep.Healthy {
				health = "unhealthy"
			}
			fmt.Fprintf(w, "  %s:%d  %s\n", ep.Address, ep.Port, health)
		}
	}
	if r.Kind == v1alpha1.KindVirtualNode || r.Kind == v1alpha1.KindVirtualGateway {
		fmt.Fprintln(w, "Connected proxies:")
		if len(d.Proxies) == 0 {
			fmt.Fprintln(w, "  (none)")
		}
		for _, p := range d.Proxies {
			kind := "sidecar"
			if p.Proxyless {
				kind = "proxyless gRPC"
			}
			fmt.Fprintf(w, "  %s  %s  streams=%d  nacks=%d\n", p.ID, kind, p.Streams, p.Nacks)
		}
	}
}

func newDeleteCmd(e *env) *cobra.Command {
	var version int64
	cmd := &cobra.Command{
		Use:   "delete KIND NAME",
		Short: "Delete a resource (refused while another resource refers to it)",
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := kindAndKey(cmd, e, args, true)
			if err != nil {
				return err
			}
			c, err := client(cmd, e)
			if err != nil {
				return err
			}
			deleted, err := c.Delete(cmd.Context(), k, version)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s deleted\n", describeKey(deleted.Key()))
			return nil
		},
	}
	addScopeFlags(cmd)
	cmd.Flags().Int64Var(&version, "version", 0, "delete only if this is the current version")
	return cmd
}
