package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoXRaySamplingRuleManifest: with XRAY_SAMPLING_RATE=0 and an X-Ray
// sampling rules file (XRAY_SAMPLING_RULE_MANIFEST) whose rule samples
// every GET of "/", a request arriving with no trace header is sampled by
// the gateway by that rule, and its segments reach the daemon.
func TestDemoXRaySamplingRuleManifest(t *testing.T) {
	t.Parallel()
	daemon := StartXRayDaemon(t)
	_, port, _ := strings.Cut(daemon.Addr, ":")
	manifest := filepath.Join(t.TempDir(), "rules.json")
	rules := `{"version": 2, "rules": [{"description": "root", "host": "*", "http_method": "GET", "url_path": "/", "fixed_target": 0, "rate": 1}], "default": {"fixed_target": 0, "rate": 0}}`
	if err := os.WriteFile(manifest, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDemo(t, "ENABLE_ENVOY_XRAY_TRACING=1", "XRAY_DAEMON_PORT="+port, "XRAY_SAMPLING_RATE=0", "XRAY_SAMPLING_RULE_MANIFEST="+manifest)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/", d.gateway))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("gateway: %s", resp.Status)
	}
	eventually(t, 30*time.Second, "the daemon gets the gateway's segment", func() error {
		daemon.mu.Lock()
		defer daemon.mu.Unlock()
		for _, doc := range daemon.docs {
			if doc["name"] == "demo/ingress" {
				return nil
			}
		}
		return fmt.Errorf("%d segments, none the gateway's", len(daemon.docs))
	})
}
