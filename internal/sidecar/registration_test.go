package sidecar

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/apiclient"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// TestRegistrationFailsOverToAnotherReplica: with several --server URLs,
// a heartbeat that fails on one replica is sent at once to the next, and
// the sidecar keeps renewing there.
func TestRegistrationFailsOverToAnotherReplica(t *testing.T) {
	t.Parallel()
	var live atomic.Int32
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/v1/meshes/m/virtualNodes/n/instances/i-1" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		live.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"address":"127.0.0.1","port":80}`))
	}))
	defer ok.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // nothing listens there any more

	id, err := nodeid.Parse("mesh/m/virtualNode/n")
	if err != nil {
		t.Fatal(err)
	}
	var clients []*apiclient.Client
	for _, u := range []string{deadURL, ok.URL} {
		c, err := apiclient.New(u, nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	r := &registration{
		clients: clients, id: id, instance: "i-1", ttl: 3 * time.Second,
		body: restv1.Instance{Address: "127.0.0.1", Port: 80, TTLSeconds: 3},
		log:  func(string, ...any) {},
	}
	ctx := context.Background()
	if wait := r.renew(ctx); wait != 0 || r.next != 1 {
		t.Fatalf("after the dead replica: wait %s, next %d; want 0 and the other replica", wait, r.next)
	}
	for range 3 {
		if wait := r.renew(ctx); wait != time.Second {
			t.Fatalf("renewal through the live replica: wait %s, want a third of the TTL", wait)
		}
	}
	if n := live.Load(); n != 3 || r.next != 1 {
		t.Fatalf("live replica saw %d registrations (client %d in use), want 3", n, r.next)
	}
}
