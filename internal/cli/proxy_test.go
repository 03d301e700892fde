package cli

import (
	"strings"
	"testing"
	"time"
)

func TestParseSecondsOrDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"15", 15 * time.Second, false},
		{"0.5", 500 * time.Millisecond, false},
		{"15s", 15 * time.Second, false},
		{"2m", 2 * time.Minute, false},
		{"0", 0, false},
		{"-1", 0, true},
		{"-1s", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
		{"1e300", 0, true},
		{"soon", 0, true},
		{"", 0, true},
	} {
		got, err := parseSecondsOrDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q: %v %v, want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), "want") {
			t.Errorf("%q: error %q does not say what is wanted", tc.in, err)
		}
	}
}

func TestPortMap(t *testing.T) {
	m, err := portMap("listen", []string{"9080=0.0.0.0:9080", "8080=[::1]:18080"})
	if err != nil || m[9080] != "0.0.0.0:9080" || m[8080] != "[::1]:18080" {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"9080", "0=127.0.0.1:1", "70000=127.0.0.1:1", "x=127.0.0.1:1", "9080=nohostport"} {
		if _, err := portMap("listen", []string{bad}); err == nil || !strings.Contains(err.Error(), "--listen") {
			t.Errorf("%q: error %v should name --listen", bad, err)
		}
	}
}

// FuzzParseSecondsOrDuration: any value is a non-negative, finite
// duration or an error.
func FuzzParseSecondsOrDuration(f *testing.F) {
	for _, s := range []string{"15", "15s", "1e300", "NaN", "-0", "0x10", "1h2m3.5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := parseSecondsOrDuration(v)
		if err == nil && d < 0 {
			t.Fatalf("%q: negative %v", v, d)
		}
	})
}

// FuzzPortMap: a parsed mapping always has a port in 1..65535 and an
// address with a host and a port.
func FuzzPortMap(f *testing.F) {
	f.Add("9080=0.0.0.0:9080")
	f.Add("1=[::1]:0")
	f.Add("=:")
	f.Fuzz(func(t *testing.T, v string) {
		m, err := portMap("app", []string{v})
		if err != nil {
			if !strings.Contains(err.Error(), "--app") {
				t.Fatalf("error %q does not name the flag", err)
			}
			return
		}
		for p, a := range m {
			if p == 0 || p > 65535 || !strings.Contains(a, ":") {
				t.Fatalf("%q: %d=%q", v, p, a)
			}
		}
	})
}
