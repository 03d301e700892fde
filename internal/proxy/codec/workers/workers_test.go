package workers

import (
	"bytes"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/meshlens/meshlens/internal/proxy/codec/workers/workerstest"
)

// goroutineID is the running goroutine's number, from its stack header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	id, _, _ := bytes.Cut(buf, []byte(" "))
	return string(id)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Jobs run one after another run on the same worker, which then ends
// once it waited Idle.
func TestWorkerIsReusedThenEnds(t *testing.T) {
	ids := make(chan string, 1)
	p := &Pool[int]{Do: func(int) { ids <- goroutineID() }, Idle: 200 * time.Millisecond}
	p.Init()
	var first string
	for i := range 5 {
		p.Run(i)
		got := <-ids
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatalf("job %d ran on goroutine %s, the first on %s", i, got, first)
		}
		// Counted as waiting, and in its select: a worker counts itself
		// just before it selects, and a job sent in between starts
		// another worker (harmless, but not what this test checks).
		waitFor(t, "the worker to wait", func() bool { return p.Waiting() == 1 && workerstest.Selecting() })
	}
	waitFor(t, "the idle worker to end", func() bool { return p.Waiting() == 0 })
	p.Run(5)
	if got := <-ids; got == first {
		t.Fatalf("a job after the idle timeout ran on the ended worker %s", got)
	}
}

// No more than MaxIdle workers wait; every job runs.
func TestMaxIdleWorkers(t *testing.T) {
	var mu sync.Mutex
	ran := 0
	release := make(chan struct{})
	p := &Pool[int]{Do: func(int) {
		<-release
		mu.Lock()
		ran++
		mu.Unlock()
	}, MaxIdle: 3}
	p.Init()
	for i := range 10 {
		p.Run(i) // every worker is busy: each job starts one
	}
	close(release)
	waitFor(t, "every job to run", func() bool { mu.Lock(); defer mu.Unlock(); return ran == 10 })
	waitFor(t, "the extra workers to end", func() bool { return p.Waiting() == 3 })
	time.Sleep(20 * time.Millisecond)
	if n := p.Waiting(); n != 3 {
		t.Fatalf("%d workers wait, want MaxIdle 3", n)
	}
}

// Waits hands out at most Max waits at once (DefaultWaits when 0, none
// when negative), and a wait given back can be taken again.
func TestWaits(t *testing.T) {
	for _, tc := range []struct {
		max  int32
		want int
	}{{0, DefaultWaits}, {3, 3}, {-1, 0}} {
		w := &Waits{Max: tc.max}
		n := 0
		for w.Take() {
			n++
		}
		if n != tc.want || int(w.Taken()) != tc.want {
			t.Errorf("Max %d: took %d (Taken %d), want %d", tc.max, n, w.Taken(), tc.want)
		}
		if tc.want > 0 {
			w.Give()
			if !w.Take() || w.Take() {
				t.Errorf("Max %d: after Give, not exactly one more wait", tc.max)
			}
		}
	}
}
