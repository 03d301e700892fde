package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/auth"
)

// newTokenCmd manages the control plane's tokens: through the API (an
// admin token), or, with --auth-tokens, in the token file itself, which is
// how the first admin token is made.
func newTokenCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke the control plane's tokens",
		Long: "token manages the bearer tokens of the REST API (roles read, write, admin) and the\n" +
			"bootstrap tokens of proxies (bound to a node or a mesh). With --auth-tokens FILE it\n" +
			"edits the server's token file directly (the server rereads it); otherwise it asks\n" +
			"the control plane (--server) with an admin --token.",
	}
	cmd.PersistentFlags().String("auth-tokens", "", "edit this token file directly instead of asking the control plane")
	cmd.AddCommand(newTokenCreateCmd(e), newTokenListCmd(e), newTokenRevokeCmd(e))
	return cmd
}

func newTokenCreateCmd(e *env) *cobra.Command {
	var role, node, mesh, desc string
	cmd := &cobra.Command{
		Use:   "create (--role read|write|admin | --node MESH/NODE | --mesh MESH)",
		Short: "Create a token and print it (it is shown only once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec := auth.Spec{Role: auth.Role(role), Mesh: mesh, Description: desc}
			if node != "" {
				m, n, ok := strings.Cut(node, "/")
				if !ok || m == "" || n == "" || (mesh != "" && mesh != m) {
					return usagef("--node %q: want MESH/NODE (the virtual node or gateway's mesh and name)", node)
				}
				spec.Mesh, spec.Node = m, n
			}
			if err := spec.Validate(); err != nil {
				return usageError{err}
			}
			var tok string
			var info restv1.TokenInfo
			if file, _ := cmd.Flags().GetString("auth-tokens"); file != "" {
				st, err := auth.Open(file)
				if err != nil {
					return runError{err}
				}
				t, entry, err := st.Create(spec)
				if err != nil {
					return runError{err}
				}
				tok, info = t, restv1.TokenInfo{ID: entry.ID, Role: string(entry.Role), Mesh: entry.Mesh, Node: entry.Node}
			} else {
				c, err := client(cmd, e)
				if err != nil {
					return err
				}
				out, err := c.CreateToken(cmd.Context(), restv1.TokenRequest{Role: role, Mesh: spec.Mesh, Node: spec.Node, Description: desc})
				if err != nil {
					return err
				}
				tok, info = out.Token, out.TokenInfo
			}
			fmt.Fprintln(e.stdout, tok)
			fmt.Fprintf(e.stderr, "created token %s (%s); it is not shown again\n", info.ID, scopeOf(info))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "a token for the REST API with this role: read (GET), write (also apply, delete), admin (also tokens)")
	f.StringVar(&node, "node", "", "a proxy's bootstrap token for the virtual node or gateway MESH/NODE only")
	f.StringVar(&mesh, "mesh", "", "a proxy's bootstrap token for any virtual node or gateway of this mesh")
	f.StringVar(&desc, "description", "", "a note kept with the token")
	return cmd
}

func scopeOf(t restv1.TokenInfo) string {
	return auth.Token{Role: auth.Role(t.Role), Mesh: t.Mesh, Node: t.Node}.Scope()
}

func newTokenListCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tokens (their ids and scopes, never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var items []restv1.TokenInfo
			if file, _ := cmd.Flags().GetString("auth-tokens"); file != "" {
				st, err := auth.Open(file)
				if err != nil {
					return runError{err}
				}
				list, err := st.List()
				if err != nil {
					return runError{err}
				}
				for _, t := range list {
					items = append(items, restv1.TokenInfo{ID: t.ID, Role: string(t.Role), Mesh: t.Mesh, Node: t.Node, Description: t.Description, Created: t.Created})
				}
			} else {
				c, err := client(cmd, e)
				if err != nil {
					return err
				}
				if items, err = c.Tokens(cmd.Context()); err != nil {
					return err
				}
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSCOPE\tCREATED\tDESCRIPTION")
			for _, t := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, scopeOf(t), t.Created.Format(time.RFC3339), t.Description)
			}
			return tw.Flush()
		},
	}
}

func newTokenRevokeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token by its id (the first 12 hex digits after mlt_)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if file, _ := cmd.Flags().GetString("auth-tokens"); file != "" {
				st, err := auth.Open(file)
				if err != nil {
					return runError{err}
				}
				if _, err := st.Revoke(id); err != nil {
					if errors.Is(err, auth.ErrNotFound) {
						return &restv1.Error{Status: 404, Code: restv1.CodeNotFound, Message: err.Error()}
					}
					return runError{err}
				}
			} else {
				c, err := client(cmd, e)
				if err != nil {
					return err
				}
				if _, err := c.RevokeToken(cmd.Context(), id); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stdout, "token %s revoked\n", id)
			return nil
		},
	}
}
