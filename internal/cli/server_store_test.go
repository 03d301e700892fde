package cli

import (
	"slices"
	"strings"
	"testing"
)

// TestEtcdOptions: --store and the --etcd-* flags become the etcd
// store's options as etcdctl's flags would; bad combinations name the
// flag.
func TestEtcdOptions(t *testing.T) {
	t.Setenv("MESHLENS_ETCD_PASSWORD", "")
	if o, err := etcdOptions("bolt", "", "", "", ""); o != nil || err != nil {
		t.Fatalf("bolt = %+v, %v; want the embedded store", o, err)
	}
	if _, err := etcdOptions("bolt", "", "", "", "root:pw"); err == nil || !strings.Contains(err.Error(), "--etcd-* flags need --store") {
		t.Fatalf("--etcd-user without etcd = %v", err)
	}
	if _, err := etcdOptions("etcd://h1", "", "", "", ""); err == nil || !strings.Contains(err.Error(), "--store") {
		t.Fatalf("bad URL = %v", err)
	}
	o, err := etcdOptions("etcd://u:p@h1:2379,h2:2379/team", "", "", "", "root:secret")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Endpoints, []string{"http://h1:2379", "http://h2:2379"}) || o.Username != "root" || o.Password != "secret" || o.Prefix != "/team/" || o.TLS != nil {
		t.Fatalf("options = %+v", o)
	}
	if _, err := etcdOptions("etcd://h1:2379", "", "cert.pem", "", ""); err == nil || !strings.Contains(err.Error(), "etcd-cert and etcd-key") {
		t.Fatalf("--etcd-cert without --etcd-key = %v", err)
	}
	if _, err := etcdOptions("etcd://h1:2379", "/nonexistent/ca.pem", "", "", ""); err == nil || !strings.Contains(err.Error(), "etcd-cacert") {
		t.Fatalf("missing CA file = %v", err)
	}
	t.Setenv("MESHLENS_ETCD_PASSWORD", "from-env")
	o, err = etcdOptions("etcd://admin@h1:2379", "", "", "", "")
	if err != nil || o.Username != "admin" || o.Password != "from-env" {
		t.Fatalf("password from the environment = %+v, %v", o, err)
	}
}
