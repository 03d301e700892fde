package sdsclient

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	mcorev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	mtlsv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/grpc"
)

func trust(name, pem string) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: pem}},
	}}}
}

// TestFetchesWantedSecretsFromSocket: an SDS server on a Unix socket
// (as a SPIRE agent serves them) answers the names asked for, and a
// changed secret reaches the store again.
func TestFetchesWantedSecretsFromSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	set := func(version string, secrets ...types.Resource) {
		snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{resourcev3.SecretType: secrets})
		if err != nil {
			t.Fatal(err)
		}
		if err := cache.SetSnapshot(ctx, "node-1", snap); err != nil {
			t.Fatal(err)
		}
	}
	set("1", trust("spiffe://example.org", "one"), trust("other", "x"))
	g := grpc.NewServer()
	secretv3.RegisterSecretDiscoveryServiceServer(g, serverv3.NewServer(ctx, cache, nil))
	go g.Serve(ln)
	defer g.Stop()

	var mu sync.Mutex
	var got []map[string]*mtlsv3.Secret
	c := New(sock, &mcorev3.Node{Id: "node-1"}, func(m map[string]*mtlsv3.Secret) error {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		return nil
	}, nil)
	go c.Run(ctx)
	c.Want([]string{"spiffe://example.org"})
	wait := func(what string, ok func(map[string]*mtlsv3.Secret) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			var last map[string]*mtlsv3.Secret
			if len(got) > 0 {
				last = got[len(got)-1]
			}
			mu.Unlock()
			if last != nil && ok(last) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	caOf := func(m map[string]*mtlsv3.Secret) string {
		return m["spiffe://example.org"].GetValidationContext().GetTrustedCa().GetInlineString()
	}
	wait("the wanted secret", func(m map[string]*mtlsv3.Secret) bool { return len(m) == 1 && caOf(m) == "one" })
	set("2", trust("spiffe://example.org", "two"), trust("other", "x"))
	wait("the renewed secret", func(m map[string]*mtlsv3.Secret) bool { return len(m) == 1 && caOf(m) == "two" })
}
