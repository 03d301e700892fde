package grpctarget

import (
	"slices"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"127.0.0.1:15010", []string{"127.0.0.1:15010"}, ""},
		{"a:1, b:2,c:3", []string{"a:1", "b:2", "c:3"}, ""},
		{"dns:///cp.example:15010", []string{"dns:///cp.example:15010"}, ""},
		{"", nil, "is empty"},
		{"a:1,b", nil, `"b" is not host:port`},
		{"a:1,,b:2", nil, `"" is not host:port`},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Split(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Split(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{"a:1", "a:1,b:2", "dns:///x:1", ",", "[::1]:2,[::2]:3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Split(s)
		if err == nil && len(got) == 0 {
			t.Fatalf("Split(%q) accepted nothing", s)
		}
	})
}
