package cli

import (
	"strings"
	"testing"
)

func TestListenPprofLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"localhost:0", true},
		{"[::1]:0", true},
		{"0.0.0.0:0", false},
		{":0", false},
		{"[::]:0", false},
		{"192.0.2.1:0", false},
		{"example.com:0", false},
		{"127.0.0.1", false},
	} {
		ln, err := listenPprof(tc.addr)
		if ln != nil {
			ln.Close()
		}
		if (err == nil) != tc.ok {
			if tc.ok && strings.Contains(err.Error(), "cannot assign") {
				continue // no IPv6 loopback on this machine
			}
			t.Errorf("%q: error %v, want ok=%v", tc.addr, err, tc.ok)
		}
		if err != nil && !tc.ok && !strings.Contains(err.Error(), "--pprof-addr") {
			t.Errorf("%q: error %q does not name the flag", tc.addr, err)
		}
	}
}
