package store

import (
	"slices"
	"strings"
	"testing"
)

func TestParseEtcdURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in         string
		endpoints  []string
		user, pass string
		prefix     string
		tls        bool
		err        string
	}{
		{in: "etcd://h1:2379,h2:2379", endpoints: []string{"http://h1:2379", "http://h2:2379"}},
		{in: "etcds://a:b%40c@h1:2379/team/mesh/", endpoints: []string{"https://h1:2379"}, user: "a", pass: "b@c", prefix: "/team/mesh/", tls: true},
		{in: "etcd://root@[::1]:2379/x", endpoints: []string{"http://[::1]:2379"}, user: "root", prefix: "/x/"},
		{in: "http://h:2379", err: "want etcd://"},
		{in: "etcd://", err: "no etcd endpoint"},
		{in: "etcd://h1", err: `endpoint "h1": want host:port`},
		{in: "etcd://u:secret@h1:1,h2", err: "u:xxxxx@"},
		{in: "etcd://:pw@h:1", err: "user is empty"},
		{in: "etcd://h:1/p?x", err: "may not hold"},
	}
	for _, tt := range tests {
		o, err := ParseEtcdURL(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want one containing %q", tt.in, err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%q: error shows the password: %v", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if !slices.Equal(o.Endpoints, tt.endpoints) || o.Username != tt.user || o.Password != tt.pass || o.Prefix != tt.prefix || (o.TLS != nil) != tt.tls {
			t.Errorf("%q = %+v", tt.in, o)
		}
	}
}

func FuzzParseEtcdURL(f *testing.F) {
	for _, s := range []string{"etcd://h:1", "etcds://u:p@h:1,g:2/x/", "etcd://@", "etcd://[::1]:2/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseEtcdURL(s)
		if err != nil {
			if o.Password != "" && strings.Contains(err.Error(), o.Password) {
				t.Fatalf("error shows the password")
			}
			return
		}
		if len(o.Endpoints) == 0 {
			t.Fatalf("%q: accepted without endpoints", s)
		}
	})
}
