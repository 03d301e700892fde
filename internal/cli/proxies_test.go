package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
)

// TestGetProxiesYAMLWithControlCharacters: a proxy whose user agent holds
// characters a YAML reader refuses raw (DEL, a C1 control) is still
// listed with -o yaml, and the text reads back as it was.
func TestGetProxiesYAMLWithControlCharacters(t *testing.T) {
	agent := "envoy\x7f/1.30\u0090"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/proxies" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(restv1.ProxyList{Items: []restv1.Proxy{{ID: "mesh/m/virtualNode/n", Mesh: "m", Name: "n", UserAgent: agent, InSync: true}}})
	}))
	defer srv.Close()
	root, stdout, stderr := testRoot(nil, "get", "proxies", "-o", "yaml", "--server", srv.URL)
	if err := root.Execute(); err != nil {
		t.Fatalf("get proxies -o yaml: %v (%s)", err, stderr)
	}
	var back []restv1.Proxy
	if err := yaml.Unmarshal(stdout.Bytes(), &back); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, stdout)
	}
	if len(back) != 1 || back[0].UserAgent != agent || !strings.Contains(stdout.String(), "inSync: true") {
		t.Fatalf("read back %+v from\n%s", back, stdout)
	}
}
