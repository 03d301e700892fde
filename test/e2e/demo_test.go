package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The demo's topology answers through the gateway; a weight change applied
// with the CLI shifts the split under steady load with no failed request;
// Ctrl-C stops every process.
func TestDemoWeightShiftUnderLoad(t *testing.T) {
	t.Parallel()
	// Ports below Linux's ephemeral range, so they don't collide with the
	// other tests' :0 ports.
	base := demoPortBase()
	api, xds, gw := base, base+1, base+2
	cmd := exec.Command(binary, "demo", "--api-port", fmt.Sprint(api), "--xds-port", fmt.Sprint(xds),
		"--gateway-port", fmt.Sprint(gw), "--port-base", fmt.Sprint(base+3), "--rps", "2", "--data-dir", t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	}()
	ready := make(chan struct{})
	out := &syncBuffer{}
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if strings.Contains(sc.Text(), "meshlens demo is running") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("demo exited: %s\n%s\n%s", cmd.ProcessState, out.String(), logs.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("demo not ready in 90s\n%s\n%s", out.String(), logs.String())
	}

	gateway := fmt.Sprintf("http://127.0.0.1:%d/", gw)
	answer := regexp.MustCompile(`^From greeter-1: (\w+) \((greeting-v[12]-1)\) (\w+) \(name-1\)$`)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func() (string, error) {
		resp, err := client.Get(gateway)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := answer.FindStringSubmatch(strings.TrimSpace(string(b)))
		if resp.StatusCode != 200 || m == nil {
			return "", fmt.Errorf("%s %q", resp.Status, b)
		}
		return m[2], nil
	}
	if _, err := get(); err != nil {
		t.Fatalf("gateway: %v", err)
	}

	// Steady load while the split changes.
	ctx, cancel := context.WithCancel(context.Background())
	var total, failed, v2 atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				inst, err := get()
				total.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else if inst == "greeting-v2-1" {
					v2.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(2 * time.Second)
	before, beforeV2 := total.Load(), v2.Load()

	s := &server{api: fmt.Sprintf("127.0.0.1:%d", api)}
	routeYAML := s.mustCLI(t, "", "get", "route", "split", "--mesh", "demo", "-o", "yaml")
	changed := strings.Replace(strings.Replace(routeYAML, "weight: 90", "weight: 0", 1), "weight: 10", "weight: 100", 1)
	if changed == routeYAML {
		t.Fatalf("route output has no weights to change:\n%s", routeYAML)
	}
	s.mustCLI(t, changed, "apply", "-f", "-")

	// After the change every greeting comes from v2.
	eventually(t, 15*time.Second, "all greetings from v2", func() error {
		for i := 0; i < 10; i++ {
			inst, err := get()
			if err != nil || inst != "greeting-v2-1" {
				return fmt.Errorf("%s %v", inst, err)
			}
		}
		return nil
	})
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	t.Logf("%d requests under load (%d before the change, %d of them from v2), %d failed", total.Load(), before, beforeV2, failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the weight change; first: %v", failed.Load(), total.Load(), firstErr.Load())
	}
	if before == 0 || float64(beforeV2) > 0.3*float64(before) {
		t.Errorf("before the change v2 served %d of %d: want about 10%%", beforeV2, before)
	}

	// Ctrl-C stops everything.
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop within 30s of SIGINT")
	}
	if !cmd.ProcessState.Success() {
		t.Errorf("demo exit: %s\n%s", cmd.ProcessState, logs.String())
	}
	if pids, _ := exec.Command("pgrep", "-f", fmt.Sprintf("127.0.0.1:%d", xds)).Output(); len(strings.TrimSpace(string(pids))) > 0 {
		t.Errorf("demo left processes behind: %s", pids)
	}
}
