package sidecar

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuthFromConfig: the bootstrap token comes from --token-file, then
// --token, then MESHLENS_TOKEN, trimmed; a file with more than one word
// is refused.
func TestAuthFromConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "MESHLENS_TOKEN" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		want    string
		wantErr string
	}{
		{"file wins", Config{TokenFile: file("a", "mlt_file\n"), Token: "mlt_flag", Getenv: env("mlt_env")}, "mlt_file", ""},
		{"flag", Config{Token: "mlt_flag", Getenv: env("mlt_env")}, "mlt_flag", ""},
		{"env", Config{Getenv: env(" mlt_env ")}, "mlt_env", ""},
		{"none", Config{Getenv: env("")}, "", ""},
		{"missing file", Config{TokenFile: filepath.Join(dir, "nope"), Getenv: env("")}, "", "--token-file"},
		{"two words", Config{TokenFile: file("b", "mlt_a mlt_b"), Getenv: env("")}, "", "white space"},
		{"bad ca", Config{CAFile: file("ca", "not pem"), Getenv: env("")}, "", "--ca-file"},
	} {
		a, err := authFromConfig(tc.cfg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !IsConfigError(err) {
				t.Errorf("%s: err = %v, want a config error with %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || a.token != tc.want {
			t.Errorf("%s: token %q, %v; want %q", tc.name, a.token, err, tc.want)
		}
		if got := len(a.dialOptions()); (tc.want != "") != (got == 1) {
			t.Errorf("%s: %d dial options", tc.name, got)
		}
	}
}
