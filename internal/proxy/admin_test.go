package proxy

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "github.com/meshlens/meshlens/internal/xdsproto/xdsprototest" // registers the xDS types the config dump holds
	"google.golang.org/protobuf/encoding/protojson"
)

func adminGet(t *testing.T, p *Proxy, path string) (int, string) {
	t.Helper()
	return adminDo(t, p, http.MethodGet, path)
}

func adminDo(t *testing.T, p *Proxy, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+p.AdminAddr().String()+path, nil)
	resp, err := testClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stateLine is the line `grep state` would print from /server_info.
func stateLine(t *testing.T, p *Proxy) string {
	t.Helper()
	_, body := adminGet(t, p, "/server_info")
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, "state") {
			return l
		}
	}
	t.Fatalf("/server_info has no state line:\n%s", body)
	return ""
}

func TestAdminServerInfoAndReady(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	p := startProxy(t, Config{NodeID: "mesh/demo/virtualNode/greeter"})

	if l := stateLine(t, p); !strings.Contains(l, "PRE_INITIALIZING") {
		t.Errorf("before any config: %q", l)
	}
	if code, body := adminGet(t, p, "/ready"); code != 503 || strings.TrimSpace(body) != "PRE_INITIALIZING" {
		t.Errorf("/ready before config: %d %q", code, body)
	}
	p.SetControlPlaneConnected(true)
	if l := stateLine(t, p); !strings.Contains(l, "\"INITIALIZING") {
		t.Errorf("connected, no config: %q", l)
	}
	mustApply(t, p, outbound(xCluster("cds_app", up.Addr())).snap(t))
	if l := stateLine(t, p); !strings.Contains(l, "LIVE") {
		t.Errorf("after Apply: %q", l)
	}
	if code, body := adminGet(t, p, "/ready"); code != 200 || strings.TrimSpace(body) != "LIVE" {
		t.Errorf("/ready: %d %q", code, body)
	}

	// The whole document parses as Envoy's ServerInfo.
	_, body := adminGet(t, p, "/server_info")
	var si adminv3.ServerInfo
	if err := protojson.Unmarshal([]byte(body), &si); err != nil {
		t.Fatalf("/server_info: %v\n%s", err, body)
	}
	if si.GetNode().GetId() != "mesh/demo/virtualNode/greeter" || si.GetState() != adminv3.ServerInfo_LIVE || si.GetUptimeCurrentEpoch() == nil {
		t.Errorf("/server_info: %v", &si)
	}
	if mode := si.GetNode().GetMetadata().GetFields()["meshlens.mode"].GetStringValue(); mode != "sidecar" || si.GetCommandLineOptions().GetConcurrency() == 0 || si.GetCommandLineOptions().GetMode() != adminv3.CommandLineOptions_Serve {
		t.Errorf("/server_info: node mode %q, options %v", mode, si.GetCommandLineOptions())
	}

	// App Mesh's container health check, verbatim.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not installed: App Mesh health check pipeline not run")
	} else if _, err := exec.LookPath("bash"); err == nil {
		check := "curl -s http://" + p.AdminAddr().String() + "/server_info | grep state | grep -q LIVE"
		if err := exec.Command("bash", "-c", check).Run(); err != nil {
			t.Errorf("%q failed while LIVE: %v", check, err)
		}
		defer func() {
			if err := exec.Command("bash", "-c", check).Run(); err == nil {
				t.Errorf("%q passed while health checks are failed", check)
			}
		}()
	}

	// /healthcheck/fail: Envoy reports DRAINING and /ready fails; GET is
	// refused.
	if code, body := adminGet(t, p, "/healthcheck/fail"); code != 405 || !strings.Contains(body, "POST required") {
		t.Errorf("GET /healthcheck/fail: %d %q", code, body)
	}
	if l := stateLine(t, p); !strings.Contains(l, "LIVE") {
		t.Errorf("a GET changed the state: %q", l)
	}
	if code, _ := adminDo(t, p, http.MethodPost, "/healthcheck/fail"); code != 200 {
		t.Errorf("POST /healthcheck/fail: %d", code)
	}
	if l := stateLine(t, p); !strings.Contains(l, "DRAINING") {
		t.Errorf("after /healthcheck/fail: %q", l)
	}
	if code, _ := adminGet(t, p, "/ready"); code != 503 {
		t.Errorf("/ready after /healthcheck/fail: %d", code)
	}
	// Traffic still flows: only health checks fail.
	if _, body := get(t, testClient(), "http://"+addrOf(t, p, egressName, 0)+"/", "greeting.demo.local", nil); body != "app" {
		t.Errorf("traffic after /healthcheck/fail: %q", body)
	}
	_, _ = adminDo(t, p, http.MethodPost, "/healthcheck/ok")
	if code, _ := adminGet(t, p, "/ready"); code != 200 {
		t.Errorf("/ready after /healthcheck/ok: %d", code)
	}
	_, _ = adminDo(t, p, http.MethodPost, "/healthcheck/fail") // for the deferred curl check
}

func TestAdminClustersListenersConfigDumpStats(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	p := startProxy(t, Config{})
	p.SetControlPlaneConnected(true)
	mustApply(t, p, outbound(xCluster("cds_app", up.Addr()), xCluster("cds_other", "127.0.0.1:1")).snap(t))
	for range 3 {
		get(t, testClient(), "http://"+addrOf(t, p, egressName, 0)+"/", "greeting.demo.local", nil)
	}

	_, clusters := adminGet(t, p, "/clusters")
	for _, want := range []string{
		"cds_app::default_priority::max_connections::1024",
		"cds_app::added_via_api::true",
		"cds_app::" + up.Addr() + "::health_flags::healthy",
		"cds_app::" + up.Addr() + "::rq_total::3",
		"cds_app::" + up.Addr() + "::rq_success::3",
		"cds_app::" + up.Addr() + "::cx_total::1",
		"cds_other::127.0.0.1:1::rq_total::0",
	} {
		if !strings.Contains(clusters, want+"\n") {
			t.Errorf("/clusters lacks %q:\n%s", want, clusters)
		}
	}
	if !regexp.MustCompile(`(?m)^cds_app::` + regexp.QuoteMeta(up.Addr()) + `::cx_active::[01]$`).MatchString(clusters) {
		t.Errorf("/clusters cx_active:\n%s", clusters)
	}
	_, cj := adminGet(t, p, "/clusters?format=json")
	var cs adminv3.Clusters
	if err := protojson.Unmarshal([]byte(cj), &cs); err != nil || len(cs.GetClusterStatuses()) != 2 {
		t.Errorf("/clusters?format=json: %v\n%s", err, cj)
	}
	for _, c := range cs.GetClusterStatuses() {
		if c.GetName() != "cds_app" {
			continue
		}
		hs := c.GetHostStatuses()
		if len(hs) != 1 || hs[0].GetAddress().GetSocketAddress().GetAddress() != "127.0.0.1" || hs[0].GetHealthStatus().GetEdsHealthStatus() != corev3.HealthStatus_HEALTHY {
			t.Fatalf("/clusters?format=json cds_app hosts: %v", hs)
		}
		var total uint64
		for _, m := range hs[0].GetStats() {
			if m.GetName() == "rq_total" {
				total = m.GetValue()
			}
		}
		if total != 3 {
			t.Errorf("/clusters?format=json cds_app rq_total = %d, want 3", total)
		}
	}

	_, ls := adminGet(t, p, "/listeners")
	if want := egressName + "::" + addrOf(t, p, egressName, 0) + "\n"; ls != want {
		t.Errorf("/listeners = %q, want %q", ls, want)
	}
	_, lj := adminGet(t, p, "/listeners?format=json")
	var lst adminv3.Listeners
	if err := protojson.Unmarshal([]byte(lj), &lst); err != nil || lst.GetListenerStatuses()[0].GetName() != egressName {
		t.Errorf("/listeners?format=json: %v\n%s", err, lj)
	}

	for _, q := range []string{"", "?include_eds"} {
		code, dump := adminGet(t, p, "/config_dump"+q)
		var cd adminv3.ConfigDump
		if err := protojson.Unmarshal([]byte(dump), &cd); code != 200 || err != nil {
			t.Fatalf("/config_dump%s: %d %v\n%s", q, code, err, dump)
		}
		var types []string
		for _, c := range cd.GetConfigs() {
			types = append(types, c.GetTypeUrl()[strings.LastIndexByte(c.GetTypeUrl(), '.')+1:])
		}
		want := "ClustersConfigDump ListenersConfigDump RoutesConfigDump"
		if q != "" {
			want = "ClustersConfigDump EndpointsConfigDump ListenersConfigDump RoutesConfigDump"
		}
		if strings.Join(types, " ") != want {
			t.Errorf("/config_dump%s sections %v, want %s", q, types, want)
		}
		var generic map[string]any
		if err := json.Unmarshal([]byte(dump), &generic); err != nil {
			t.Errorf("/config_dump is not plain JSON: %v", err)
		}
		if !strings.Contains(dump, `"name": "`+egressName+`"`) && !strings.Contains(dump, `"name":  "`+egressName+`"`) {
			t.Errorf("/config_dump lacks the listener")
		}
	}

	_, stats := adminGet(t, p, "/stats")
	for _, want := range []string{"server.live: 1\n", "server.state: 0\n", "control_plane.connected_state: 1\n", "cluster.cds_app.upstream_rq_total: 3\n", "cluster.cds_app.membership_healthy: 1\n"} {
		if !strings.Contains(stats, want) {
			t.Errorf("/stats lacks %q:\n%s", want, stats)
		}
	}
	if !regexp.MustCompile(`(?m)^server\.uptime: \d+$`).MatchString(stats) {
		t.Errorf("/stats lacks server.uptime:\n%s", stats)
	}
	_, prom := adminGet(t, p, "/stats/prometheus")
	for _, want := range []string{
		"# TYPE envoy_server_live gauge\nenvoy_server_live{} 1\n",
		"envoy_control_plane_connected_state{} 1\n",
		`envoy_cluster_upstream_rq_total{envoy_cluster_name="cds_app"} 3` + "\n",
		`envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="cds_app"} 3` + "\n",
		`envoy_cluster_membership_total{envoy_cluster_name="cds_other"} 1` + "\n",
	} {
		if !strings.Contains(prom, want) {
			t.Errorf("/stats/prometheus lacks %q:\n%s", want, prom)
		}
	}
	if code, _ := adminGet(t, p, "/nope"); code != 404 {
		t.Errorf("unknown admin path: %d", code)
	}
}

func TestAdminDrainListeners(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, "app", nil)
	p := startProxy(t, Config{})
	x := outbound(xCluster("cds_app", up.Addr()))
	mustApply(t, p, x.snap(t))
	addr := addrOf(t, p, egressName, 0)
	c := testClient()
	if _, body := get(t, c, "http://"+addr+"/", "greeting.demo.local", nil); body != "app" {
		t.Fatalf("before drain: %q", body)
	}
	if code, _ := adminGet(t, p, "/drain_listeners"); code != 405 {
		t.Errorf("GET /drain_listeners: %d, want 405", code)
	}
	// Inbound only: the egress listener keeps serving.
	if code, _ := adminDo(t, p, http.MethodPost, "/drain_listeners?inboundonly"); code != 200 {
		t.Fatalf("POST /drain_listeners?inboundonly: %d", code)
	}
	if _, body := get(t, c, "http://"+addr+"/", "greeting.demo.local", nil); body != "app" {
		t.Fatalf("egress after inbound-only drain: %q", body)
	}
	if code, _ := adminDo(t, p, http.MethodPost, "/drain_listeners"); code != 200 {
		t.Fatalf("POST /drain_listeners: %d", code)
	}
	waitFor(t, "the egress socket to close", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	// A later snapshot does not bind drained listeners again.
	mustApply(t, p, x.snap(t))
	if bl := p.Listeners(); len(bl) != 0 {
		t.Errorf("listeners bound after drain: %+v", bl)
	}
	// The server stays LIVE: draining listeners is not failing health checks.
	if code, _ := adminGet(t, p, "/ready"); code != 200 {
		t.Errorf("/ready after /drain_listeners: %d", code)
	}
}

func TestAdminQuitQuitQuit(t *testing.T) {
	t.Parallel()
	p, err := New(Config{AdminAddr: "127.0.0.1:0", EgressAddr: "127.0.0.1:0", Log: quietLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(t.Context()) }()
	waitFor(t, "the admin server", func() bool {
		resp, err := http.Get("http://" + p.AdminAddr().String() + "/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if code, _ := adminDo(t, p, http.MethodPost, "/quitquitquit"); code != 200 {
		t.Fatalf("/quitquitquit: %d", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after /quitquitquit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after /quitquitquit")
	}
	if err := p.Apply(outbound(xCluster("c", "127.0.0.1:1")).snap(t)); err == nil {
		t.Error("Apply after exit succeeded")
	}
}
