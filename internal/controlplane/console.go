package controlplane

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/console"
	"github.com/meshlens/meshlens/internal/store"
	"github.com/meshlens/meshlens/internal/xds"
)

// ValidateResponse is POST /v1/console/validate's body: whether the
// documents would apply, the field errors if not, the warnings they would
// bring, and what they would change for traffic.
type ValidateResponse struct {
	Valid    bool                   `json:"valid"`
	Message  string                 `json:"message,omitempty"`
	Errors   []*v1alpha1.FieldError `json:"errors,omitempty"`
	Warnings []string               `json:"warnings,omitempty"`
	Changes  []console.ProxyDiff    `json:"changes"`
}

// handleConsoleValidate validates a pasted spec and dry-runs it: the same
// checks as POST /v1/apply?dryRun=true, then every data plane of the
// documents' meshes translated before and after, their route and cluster
// differences reported. Nothing is written.
func (s *Server) handleConsoleValidate(w http.ResponseWriter, r *http.Request) {
	docs, err := s.decodeBody(r)
	if err != nil {
		var apiErr *restv1.Error
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusRequestEntityTooLarge {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ValidateResponse{Message: err.Error(), Changes: []console.ProxyDiff{}})
		return
	}
	if len(docs) == 0 {
		writeJSON(w, http.StatusOK, ValidateResponse{Message: "request body: no documents", Changes: []console.ProxyDiff{}})
		return
	}
	out := ValidateResponse{Changes: []console.ProxyDiff{}}
	var msgs []string
	for i, d := range docs {
		if err := d.Validate(); err != nil {
			prefix := fmt.Sprintf("document %d (%s)", i+1, d.Key())
			var fe v1alpha1.FieldErrors
			if errors.As(err, &fe) {
				for _, e := range fe {
					out.Errors = append(out.Errors, &v1alpha1.FieldError{Path: prefix + ": " + e.Path, Message: e.Message})
				}
			}
			msgs = append(msgs, prefix+": "+err.Error())
		}
	}
	if len(msgs) > 0 {
		out.Message = fmt.Sprint(len(msgs), " invalid document(s): ", msgs[0])
		writeJSON(w, http.StatusOK, out)
		return
	}
	before := s.store.Snapshot()
	var after *store.Snapshot
	start := time.Now()
	_, err = s.store.Apply(r.Context(), docs, func(next *store.Snapshot, changed []v1alpha1.Key) error {
		if err := check(next, changed); err != nil {
			return err
		}
		after = next
		return errDryRun
	})
	s.metrics.observeStore("dry_run", start, err)
	if err != nil && !errors.Is(err, errDryRun) {
		out.Message = err.Error()
		writeJSON(w, http.StatusOK, out)
		return
	}
	if after == nil {
		after = before // nothing would change
	}
	out.Valid = true
	keys := make([]v1alpha1.Key, 0, len(docs))
	meshes := map[string]bool{}
	for _, d := range docs {
		keys = append(keys, d.Key())
		if d.Kind == v1alpha1.KindMesh {
			meshes[d.Name] = true
		} else {
			meshes[d.Mesh] = true
		}
	}
	out.Warnings = applyWarnings(s.warningsOf(before, keys, true), s.warningsOf(after, keys, false), keys)
	list := make([]string, 0, len(meshes))
	for m := range meshes {
		list = append(list, m)
	}
	if ch := console.Diff(before, after, func(l v1alpha1.Lookup) xds.Endpoints { return s.endpointView(l) }, list); ch != nil {
		out.Changes = ch
	}
	writeJSON(w, http.StatusOK, out)
}
