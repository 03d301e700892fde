package harness

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process the harness started and owns.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startProc starts bin with args, logging to dir/name.log.
func startProc(dir, name, bin string, args ...string) (*proc, error) {
	return startProcEnv(dir, name, nil, bin, args...)
}

// startProcEnv is startProc with extra environment variables.
func startProcEnv(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop sends SIGTERM and waits, then SIGKILL.
func (p *proc) stop() {
	if p == nil || p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// usage is what /proc says about a process at one moment.
type usage struct {
	CPU time.Duration // user + system
	Sys time.Duration // system: in the kernel on the process's behalf
	RSS int64         // bytes
	// Reads and Writes count the read(2)-like and write(2)-like system
	// calls (syscr and syscw of /proc/<pid>/io), zero when unreadable.
	// A Go process's socket reads and writes are among them; HAProxy's
	// recv and send are not.
	Reads, Writes int64
}

// idleCPUWindow is how long the proxies are left idle while their CPU
// time is counted.
const idleCPUWindow = 10 * time.Second

// idleCPU is the CPU time, in ms per second, each process spent over
// window, counted with nanosecond resolution from the schedstat of each
// of its threads (a second of a sidecar's idle CPU is a few ms, under
// the 10 ms tick of /proc/<pid>/stat). A process whose threads cannot be
// read is left out.
func idleCPU(procs map[string]*proc, window time.Duration) map[string]float64 {
	before := map[string]time.Duration{}
	for name, p := range procs {
		if d, err := threadsCPU(p.pid()); err == nil {
			before[name] = d
		}
	}
	start := time.Now()
	time.Sleep(window)
	elapsed := time.Since(start).Seconds()
	out := map[string]float64{}
	for name, b := range before {
		if d, err := threadsCPU(procs[name].pid()); err == nil && d >= b {
			out[name] = float64(d-b) / float64(time.Millisecond) / elapsed
		}
	}
	return out
}

// threadsCPU sums the time on CPU of every thread of pid: the first field
// of /proc/<pid>/task/<tid>/schedstat, in nanoseconds.
func threadsCPU(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("threads of %d: %w", pid, err)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("schedstat of %d/%s: %w", pid, t.Name(), err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

var clockTick = func() float64 {
	// USER_HZ is 100 on every Linux this runs on; sysconf is not in the
	// standard library.
	return 100
}()

// readUsage reads utime+stime from /proc/<pid>/stat and VmRSS from
// /proc/<pid>/status.
func readUsage(pid int) (usage, error) {
	var u usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// The command name may contain spaces; fields follow the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return u, fmt.Errorf("parse stat of %d", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return u, fmt.Errorf("parse stat of %d: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	u.CPU = time.Duration((ut + st) / clockTick * float64(time.Second))
	u.Sys = time.Duration(st / clockTick * float64(time.Second))
	sf, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, fmt.Errorf("read status of %d: %w", pid, err)
	}
	defer sf.Close()
	sc := bufio.NewScanner(sf)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			u.RSS = kb << 10
		}
	}
	u.Reads, u.Writes = readIO(pid)
	return u, nil
}

// readIO reads syscr and syscw from /proc/<pid>/io; zeros when it cannot.
func readIO(pid int) (reads, writes int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// rssSampler records the peak RSS of some processes while a run lasts.
type rssSampler struct {
	mu   sync.Mutex
	peak map[int]int64
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(pids []int, every time.Duration) *rssSampler {
	s := &rssSampler{peak: map[int]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			for _, pid := range pids {
				if u, err := readUsage(pid); err == nil {
					s.mu.Lock()
					s.peak[pid] = max(s.peak[pid], u.RSS)
					s.mu.Unlock()
				}
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() map[int]int64 {
	close(s.stop)
	<-s.done
	return s.peak
}

// freePort asks the kernel for an unused loopback port.
func freePort() (string, error) {
	// Below Linux's ephemeral range (32768-60999 by default): a port the
	// kernel picked for a listener on port 0 is released here and bound
	// again later by a proxy, and meanwhile an outgoing connection of
	// any process (the load generator makes thousands) could take it as
	// its local port, failing the proxy's bind. Ports from this range
	// are never given out that way.
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		port := portLow + rand.IntN(portHigh-portLow)
		if portsGiven[port] {
			continue // given out before: a proxy may bind it any time
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		portsGiven[port] = true
		return addr, nil
	}
	return "", fmt.Errorf("find a free port: none free among 200 tries in %d-%d", portLow, portHigh)
}

// The ports freePort picks from, and those it gave out.
const portLow, portHigh = 20000, 32000

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = cond(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, addr string) error {
	return waitFor(ctx, 20*time.Second, "listener "+addr, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

var (
	plainHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	longHTTP  = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil}}
)

func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// machineBusy reads the CPU time every core spent running processes
// (user, nice, system, steal) since boot, from /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat: %q", line)
	}
	var busy float64
	for i, v := range f[1:] {
		// idle and iowait are not work; irq and softirq are left out
		// because loopback traffic's softirq work is the benchmark's own
		// but not charged to its processes.
		if i == 3 || i == 4 || i == 5 || i == 6 {
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
	}
	return time.Duration(busy / clockTick * float64(time.Second)), nil
}

// foreignMeter measures how much CPU processes outside the benchmark
// (neither this program nor the processes it started) used during a run:
// another workload on the machine distorts every figure.
type foreignMeter struct {
	pids  []int
	busy0 time.Duration
	own0  time.Duration
	t0    time.Time
}

func ownCPU(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		if u, err := readUsage(pid); err == nil {
			sum += u.CPU
		}
	}
	return sum
}

func startForeign(pids []int) *foreignMeter {
	m := &foreignMeter{pids: append([]int{os.Getpid()}, pids...), t0: time.Now()}
	m.busy0, _ = machineBusy()
	m.own0 = ownCPU(m.pids)
	return m
}

// cores returns the foreign CPU used since the start, in cores.
func (m *foreignMeter) cores() float64 {
	busy, err := machineBusy()
	if err != nil {
		return 0
	}
	foreign := (busy - m.busy0) - (ownCPU(m.pids) - m.own0)
	return max(0, foreign.Seconds()/time.Since(m.t0).Seconds())
}
