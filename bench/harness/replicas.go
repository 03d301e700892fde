package harness

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshlens/meshlens/bench/xdssim"
)

// startEtcd starts an n-member etcd cluster (the etcd binary on PATH) on
// loopback ports found free a moment ago, and waits until every member
// is healthy. It returns the members and their client URLs.
func startEtcd(ctx context.Context, dir string, n int) ([]*proc, []string, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, nil, fmt.Errorf("etcd server (apt-get install etcd-server): %w", err)
	}
	var clients, peers, initial []string
	for i := range n {
		c, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		p, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		clients = append(clients, "http://"+c)
		peers = append(peers, "http://"+p)
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, p))
	}
	var procs []*proc
	stopAll := func() {
		for _, p := range procs {
			p.stop()
		}
	}
	for i := range n {
		p, err := startProc(dir, fmt.Sprintf("etcd-%d", i), bin,
			"--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("etcd-%d", i)),
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--quota-backend-bytes", "4294967296", "--log-level", "warn")
		if err != nil {
			stopAll()
			return nil, nil, err
		}
		procs = append(procs, p)
	}
	hc := &http.Client{Timeout: time.Second}
	for i, c := range clients {
		err := waitFor(ctx, 30*time.Second, "etcd member healthy", func() error {
			resp, err := hc.Get(c + "/health")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %s", resp.Status)
			}
			return nil
		})
		if err != nil {
			stopAll()
			return nil, nil, fmt.Errorf("%w: %s", err, procs[i].tail())
		}
	}
	return procs, clients, nil
}

// runXDSReplicas is runXDSOnce against replicas replicas on a
// three-member etcd cluster: the mesh is loaded and changed through the
// first replica, and the simulated sidecars spread over all of them, so
// convergence includes the way from one replica through etcd to the
// others.
func runXDSReplicas(ctx context.Context, o Options, work, bin string, n, replicas int) (*xdssim.Result, error) {
	res := &xdssim.Result{Streams: n, Replicas: replicas}
	dir := filepath.Join(work, fmt.Sprintf("xds-%d-replicas", n))
	if err := mkdir(dir); err != nil {
		return res, err
	}
	members, endpoints, err := startEtcd(ctx, dir, 3)
	if err != nil {
		return res, err
	}
	defer func() {
		for _, m := range members {
			m.stop()
		}
	}()
	store := "etcd://" + strings.Join(trimHTTP(endpoints), ",")
	var procs []*proc
	defer func() {
		for _, r := range procs {
			r.stop()
		}
	}()
	var apis, xdss []string
	for i := range replicas {
		api, err := freePort()
		if err != nil {
			return res, err
		}
		xds, err := freePort()
		if err != nil {
			return res, err
		}
		r, err := startProc(dir, fmt.Sprintf("replica-%d", i), bin, "server", "--store", store,
			"--data-dir", filepath.Join(dir, fmt.Sprintf("data-%d", i)), "--replica-id", fmt.Sprintf("r%d", i),
			"--api-addr", api, "--xds-addr", xds, "--log-level", "warn", "--max-body-bytes", "67108864")
		if err != nil {
			return res, err
		}
		procs = append(procs, r)
		if err := waitTCP(ctx, api); err != nil {
			return res, fmt.Errorf("replica %d: %w: %s", i, err, r.tail())
		}
		apis, xdss = append(apis, api), append(xdss, xds)
	}
	sum := func(ps []*proc) (time.Duration, int64, error) {
		var cpu time.Duration
		var rss int64
		for _, p := range ps {
			u, err := readUsage(p.pid())
			if err != nil {
				return 0, 0, err
			}
			cpu += u.CPU
			rss += u.RSS
		}
		return cpu, rss, nil
	}
	cfg := xdssim.Config{
		APIURL: "http://" + apis[0], XDSAddr: strings.Join(xdss, ","),
		Usage:          func() (time.Duration, int64, error) { return sum(procs) },
		ChunkResources: 100,
		Services:       o.XDSServices, EndpointsPerNode: o.XDSEndpointsPerNode, Backends: 5,
		Streams: n, Timeout: o.XDSTimeout,
	}
	if err := xdssim.Load(ctx, cfg, res); err != nil {
		return res, fmt.Errorf("load mesh: %w (%s)", err, procs[0].tail())
	}
	if err := xdssim.Run(ctx, cfg, res); err != nil {
		return res, fmt.Errorf("simulate: %w (%s)", err, procs[0].tail())
	}
	for _, r := range procs {
		u, err := readUsage(r.pid())
		if err == nil {
			res.ReplicaRSSMB = append(res.ReplicaRSSMB, float64(u.RSS)/(1<<20))
		}
	}
	for _, m := range members {
		u, err := readUsage(m.pid())
		if err == nil {
			res.EtcdRSSMB = append(res.EtcdRSSMB, float64(u.RSS)/(1<<20))
		}
	}
	return res, nil
}

func trimHTTP(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = strings.TrimPrefix(u, "http://")
	}
	return out
}
