package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var goodToken = "mlt_0123456789ab_" + strings.Repeat("A", 43)

func TestParseToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, wantID, wantErr string
	}{
		{"good", goodToken, "0123456789ab", ""},
		{"empty", "", "", "want 60 characters"},
		{"short", goodToken[:59], "", "want 60 characters"},
		{"prefix", "xlt" + goodToken[3:], "", `does not start with "mlt_"`},
		{"separator", "mlt_0123456789ab-" + goodToken[17:], "", "want _ after"},
		{"upper id", "mlt_0123456789AB_" + goodToken[17:], "", "id: want 12 lower-case hex"},
		{"bad secret", "mlt_0123456789ab_" + strings.Repeat("!", 43), "", "secret"},
		// 43 base64 characters carry 258 bits; the last two must be zero.
		{"non-canonical secret", "mlt_0123456789ab_" + strings.Repeat("A", 42) + "B", "", "secret"},
	} {
		id, err := ParseToken(tc.in)
		if tc.wantErr == "" {
			if err != nil || id != tc.wantID {
				t.Errorf("%s: ParseToken = %q, %v; want %q", tc.name, id, err, tc.wantID)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err = %v, want ErrMalformed with %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestParseAuthorization(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"bearer", "Bearer " + goodToken, nil},
		{"lower case scheme", "bearer " + goodToken, nil},
		{"two spaces", "Bearer  " + goodToken, nil},
		{"empty", "", ErrMissing},
		{"basic", "Basic dXNlcjpwYXNz", ErrMalformed},
		{"no token", "Bearer", ErrMalformed},
		{"bare token", goodToken, ErrMalformed},
		{"trailing junk", "Bearer " + goodToken + " x", ErrMalformed},
		{"huge", "Bearer " + strings.Repeat("a", 2000), ErrMalformed},
	} {
		tok, err := ParseAuthorization(tc.in)
		switch {
		case tc.want == nil && (err != nil || tok != goodToken):
			t.Errorf("%s: = %q, %v; want the token", tc.name, tok, err)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(goodToken)
	f.Add("mlt_")
	f.Add("mlt_0123456789ab_" + strings.Repeat("-", 43))
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if len(s) != TokenLen || !validID(id) || !strings.HasPrefix(s, "mlt_"+id+"_") {
			t.Fatalf("accepted %q with id %q", s, id)
		}
	})
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("Bearer " + goodToken)
	f.Add("bearer   " + goodToken)
	f.Add("Basic x")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseAuthorization(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMissing) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrMissing", err)
			}
			return
		}
		if _, err := ParseToken(tok); err != nil || !strings.HasSuffix(s, tok) {
			t.Fatalf("accepted %q as token %q", s, tok)
		}
	})
}

func TestStoreRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 {
		t.Fatalf("a missing file has %d tokens", s.Len())
	}
	admin, _, err := s.Create(Spec{Role: RoleAdmin, Description: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	node, nodeEntry, err := s.Create(Spec{Mesh: "demo", Node: "greeter"})
	if err != nil {
		t.Fatal(err)
	}
	mesh, _, err := s.Create(Spec{Mesh: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	data, _ := os.ReadFile(path)
	for _, tok := range []string{admin, node, mesh} {
		if strings.Contains(string(data), tok[17:]) {
			t.Fatalf("the token file holds a token's secret:\n%s", data)
		}
	}

	// Another process (a second Store on the file) sees the tokens.
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tok                string
		admin, write       bool
		greeter, gw, other bool
	}{
		{admin, true, true, true, true, true},
		{node, false, false, true, false, false},
		{mesh, false, false, true, true, false},
	} {
		p, err := other.Authenticate(tc.tok)
		if err != nil {
			t.Fatalf("Authenticate(%s): %v", tc.tok[:16], err)
		}
		if p.HasRole(RoleAdmin) != tc.admin || p.HasRole(RoleWrite) != tc.write || p.HasRole(RoleRead) != tc.write {
			t.Errorf("%s: roles admin=%v write=%v", p, p.HasRole(RoleAdmin), p.HasRole(RoleWrite))
		}
		if p.AllowsNode("demo", "greeter") != tc.greeter || p.AllowsNode("demo", "gw") != tc.gw || p.AllowsNode("other", "greeter") != tc.other {
			t.Errorf("%s: node bindings wrong", p)
		}
	}
	// A token whose id exists but whose secret differs is invalid.
	forged := node[:17] + strings.Repeat("A", 43)
	if _, err := other.Authenticate(forged); !errors.Is(err, ErrInvalid) {
		t.Errorf("forged secret: err = %v, want ErrInvalid", err)
	}
	if _, err := s.Revoke(nodeEntry.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(node); !errors.Is(err, ErrInvalid) {
		t.Errorf("revoked token: err = %v, want ErrInvalid", err)
	}
	if _, err := s.Revoke(nodeEntry.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke twice: err = %v, want ErrNotFound", err)
	}
	list, err := other.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List after revoke = %v, %v; want 2 tokens", list, err)
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{"role", Spec{Role: RoleRead}, ""},
		{"node", Spec{Mesh: "m", Node: "n"}, ""},
		{"mesh", Spec{Mesh: "m"}, ""},
		{"nothing", Spec{}, "give a role"},
		{"bad role", Spec{Role: "root"}, `role "root": want read, write or admin`},
		{"role and node", Spec{Role: RoleRead, Mesh: "m"}, "not both"},
		{"node without mesh", Spec{Node: "n"}, "needs its mesh"},
		{"slash", Spec{Mesh: "m", Node: "a/b"}, `node "a/b"`},
		{"long description", Spec{Role: RoleRead, Description: strings.Repeat("x", 257)}, "description: at most 256"},
	} {
		err := tc.spec.Validate()
		if (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestParseFileRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, data, wantErr string }{
		{"version", `{"version":2,"tokens":[]}`, "version"},
		{"unknown field", `{"version":1,"tokens":[],"x":1}`, "unknown field"},
		{"bad id", `{"version":1,"tokens":[{"id":"x","sha256":"` + strings.Repeat("a", 64) + `","role":"read"}]}`, "tokens[0].id"},
		{"bad hash", `{"version":1,"tokens":[{"id":"0123456789ab","sha256":"zz","role":"read"}]}`, "tokens[0].sha256"},
		{"no scope", `{"version":1,"tokens":[{"id":"0123456789ab","sha256":"` + strings.Repeat("a", 64) + `"}]}`, "tokens[0]: token: give a role"},
	} {
		if _, err := parseFile([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

// TestStoreKeepsTokensWhenTheFileGoesBad: a file that becomes unreadable
// while the server runs keeps the tokens last read; a new good file
// replaces them.
func TestStoreKeepsTokensWhenTheFileGoesBad(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Create(Spec{Role: RoleRead})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	err = s.refresh(true)
	s.mu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("refresh of a bad file: %v, want a decode error", err)
	}
	if _, err := s.Authenticate(tok); err != nil {
		t.Fatalf("a token of the last good file: %v", err)
	}
	if _, err := Open(path); err == nil {
		t.Fatal("Open of a bad file succeeded")
	}
	if err := os.WriteFile(path, []byte(`{"version":1,"tokens":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	err = s.refresh(true)
	s.mu.Unlock()
	if _, aerr := s.Authenticate(tok); err != nil || !errors.Is(aerr, ErrInvalid) {
		t.Fatalf("after a good empty file: refresh %v, authenticate %v; want the token gone", err, aerr)
	}
}

// FuzzParseFile: the token file is read from disk and may be edited by
// hand: any bytes give tokens that pass validation, or an error, never a
// crash; an accepted file keeps every entry it names.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"tokens":[]}`))
	f.Add([]byte(`{"version":1,"tokens":[{"id":"0123456789ab","sha256":"` + strings.Repeat("a", 64) + `","role":"read"}]}`))
	f.Add([]byte(`{"version":1,"tokens":[{"id":"0123456789ab","sha256":"` + strings.Repeat("b", 64) + `","mesh":"m","node":"n"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		toks, err := parseFile(data)
		if err != nil {
			return
		}
		for id, tok := range toks {
			if id == "" {
				t.Fatalf("accepted a token with an empty id: %+v", tok)
			}
		}
	})
}
