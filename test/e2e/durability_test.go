package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	"github.com/meshlens/meshlens/internal/apiclient"
)

// The control plane is killed with SIGKILL while clients stream applies;
// after a restart on the same data dir every acknowledged write is there.
func TestAcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir)
	s.mustCLI(t, "kind: Mesh\nname: crash\n", "apply", "-f", "-")

	for round := 0; round < 3; round++ {
		c, err := apiclient.New(s.URL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		acked := map[string]int64{} // node name -> acknowledged version
		var applyErr error
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					name := fmt.Sprintf("r%d-w%d-n%d", round, w, i%5)
					doc := fmt.Sprintf("kind: VirtualNode\nmesh: crash\nname: %s\nspec:\n  listeners:\n    - portMapping: {port: %d, protocol: http}\n  serviceDiscovery:\n    dns: {hostname: %s.crash.local}\n", name, 1000+i, name)
					resp, err := c.Apply(ctx, []byte(doc), false)
					if err != nil {
						if !errors.Is(err, apiclient.ErrUnreachable) && ctx.Err() == nil {
							mu.Lock()
							applyErr = err
							mu.Unlock()
						}
						return // the server is gone
					}
					mu.Lock()
					acked[name] = resp.Results[0].Resource.Metadata.Version
					mu.Unlock()
				}
			}(w)
		}
		eventually(t, 30*time.Second, "writes acknowledged", func() error {
			mu.Lock()
			defer mu.Unlock()
			if applyErr != nil {
				t.Fatalf("apply failed: %v", applyErr)
			}
			total := int64(0)
			for _, v := range acked {
				total += v
			}
			if total < 60 {
				return fmt.Errorf("%d acknowledged", total)
			}
			return nil
		})
		s.kill()
		cancel()
		wg.Wait()

		s.restart()
		for name, version := range acked {
			got, err := c.Get(context.Background(), v1alpha1.Key{Kind: v1alpha1.KindVirtualNode, Mesh: "crash", Name: name})
			if err != nil {
				t.Fatalf("round %d: acknowledged %s (version %d) lost after SIGKILL: %v", round, name, version, err)
			}
			if got.Metadata.Version < version {
				t.Fatalf("round %d: %s at version %d after restart, but version %d was acknowledged", round, name, got.Metadata.Version, version)
			}
		}
		if strings.Contains(s.logs.String(), "level=ERROR") {
			t.Fatalf("round %d: the store did not open cleanly:\n%s", round, s.logs.String())
		}
		t.Logf("round %d: %d resources acknowledged before SIGKILL, all present after restart", round, len(acked))
	}
}
