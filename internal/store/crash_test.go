package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// crashDirEnv, when set, makes TestCrashChild the writer of the crash
// test: it writes into the store in that directory until it is killed.
const crashDirEnv = "MESHLENS_STORE_CRASH_CHILD_DIR"

// crashNodes is how many virtual nodes the writer cycles through.
const crashNodes = 20

// TestCrashChild is not a test on its own: TestCrashDurability runs the
// test binary again with only this test selected and crashDirEnv set.
// It applies batches in a loop and, after each Apply returns, prints one
// "ack NAME VERSION" line per resource of the batch: a line on stdout is
// a promise that the write is durable.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the writer half of TestCrashDurability")
	}
	s, err := Open(filepath.Join(dir, "meshlens.db"), Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Apply(ctx, []*v1alpha1.Resource{mesh("m")}, nil); err != nil {
		t.Fatal(err)
	}
	// Bounded, so that a writer whose parent died does not run forever.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		a, b := fmt.Sprintf("n%d", i%crashNodes), fmt.Sprintf("n%d", (i+crashNodes/2)%crashNodes)
		res, err := s.Apply(ctx, []*v1alpha1.Resource{vnode("m", a, 1000+i), vnode("m", b, 1000+i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var line bytes.Buffer
		for _, r := range res {
			fmt.Fprintf(&line, "ack %s %d\n", r.Resource.Name, r.Resource.Metadata.Version)
		}
		if _, err := os.Stdout.Write(line.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCrashDurability kills a writing process with SIGKILL at a random
// point and checks that every write it acknowledged is in the reopened
// store.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns writer processes")
	}
	t.Parallel()
	for round := range 3 {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			dir := t.TempDir()
			acked, total := runAndKillWriter(t, dir, 50+rand.IntN(100))

			s, err := Open(filepath.Join(dir, "meshlens.db"), Options{Logger: quietLog, LockTimeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("reopen after SIGKILL: %v", err)
			}
			defer s.Close()
			snap := s.Snapshot()
			for name, version := range acked {
				r := snap.Get(vnKey("m", name))
				if r == nil {
					t.Errorf("%s: acknowledged at version %d, missing after the crash", name, version)
					continue
				}
				if r.Metadata.Version < version {
					t.Errorf("%s: acknowledged at version %d, found version %d", name, version, r.Metadata.Version)
				}
			}
			// One revision for the mesh, one per acknowledged batch of two.
			if want := uint64(1 + total/2); snap.Revision() < want {
				t.Errorf("revision %d after %d acknowledged batches", snap.Revision(), total/2)
			}
			// The recovered store takes writes.
			if _, err := s.Apply(context.Background(), []*v1alpha1.Resource{vnode("m", "after", 1)}, nil); err != nil {
				t.Errorf("write after recovery: %v", err)
			}
		})
	}
}

// runAndKillWriter starts the writer in dir, kills it once it has
// acknowledged at least killAfter writes, and returns the highest
// acknowledged version of every node and the count of acknowledgements,
// including those printed before the kill landed.
func runAndKillWriter(t *testing.T, dir string, killAfter int) (map[string]int64, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Whatever happens below, the writer does not outlive the test.
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	acked := map[string]int64{}
	total, killed := 0, false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[0] != "ack" {
			continue // the test framework's own lines
		}
		v, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			t.Fatalf("bad ack line %q", sc.Text())
		}
		acked[fields[1]] = max(acked[fields[1]], v)
		total++
		if !killed && total >= killAfter {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill writer: %v", err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the writer stopped after %d acknowledgements, before it was killed; stderr:\n%s", total, stderr.String())
	}
	return acked, total
}
