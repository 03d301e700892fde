package restv1

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// The JSON field names are the API's contract (docs/api.md): a renamed
// Go field must not rename a wire field.
func TestWireShapes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"error", &Error{Status: 404, Code: CodeNotFound, Message: "VirtualNode demo/x not found"},
			`{"code":"NotFoundException","message":"VirtualNode demo/x not found"}`},
		{"apply", ApplyResponse{Revision: 3, DryRun: true, Results: []Result{{Op: "valid"}}, Warnings: []string{"w"}},
			`{"revision":3,"dryRun":true,"results":[{"op":"valid","resource":null}],"warnings":["w"]}`},
		{"list", ListResponse{Items: []*v1alpha1.Resource{}}, `{"items":[]}`},
		{"registration", Instance{Address: "10.0.0.1", Port: 9080, HealthStatus: "HEALTHY", TTLSeconds: 15},
			`{"address":"10.0.0.1","port":9080,"healthStatus":"HEALTHY","ttlSeconds":15}`},
		{"instances", InstanceList{Items: []Instance{{Mesh: "demo", VirtualNode: "n", ID: "i", Address: "a", Port: 1, RegisteredAt: at}}},
			`{"items":[{"mesh":"demo","virtualNode":"n","id":"i","address":"a","port":1,"registeredAt":"2026-01-02T03:04:05Z"}]}`},
		{"proxies", ProxyList{Items: []Proxy{{ID: "mesh/demo/virtualNode/n", Streams: 1, Sync: map[string]string{"t": SyncNotSent}, InSync: true}}},
			`{"items":[{"id":"mesh/demo/virtualNode/n","streams":1,"sync":{"t":"NOT SENT"},"inSync":true}]}`},
		{"description", Description{ReferredBy: []v1alpha1.Key{}, Endpoints: []Endpoint{{Address: "a", Port: 2, Healthy: true}}},
			`{"resource":null,"referredBy":[],"endpoints":[{"address":"a","port":2,"healthy":true}]}`},
	} {
		got, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestErrorIsAnError(t *testing.T) {
	t.Parallel()
	var err error = &Error{Status: 409, Code: CodeConflict, Message: "version conflict"}
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 409 || err.Error() != "version conflict" {
		t.Fatalf("%v %+v", err, ae)
	}
}
