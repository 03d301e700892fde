package sysmon

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestWanted(t *testing.T) {
	for _, tc := range []struct {
		goos, godebug string
		want          bool
	}{
		{"linux", "", true},
		{"linux", "madvdontneed=1", true},
		{"linux", "http2debug=1,gctrace=0", true},
		{"linux", "schedtrace=0", false},               // the user turned it off
		{"linux", "gctrace=1, schedtrace=1000", false}, // the user's own period
		{"linux", Setting, false},                      // the process Reexec started
		{"linux", "x=1," + Setting, false},
		{"linux", "scheddetail=1", true}, // another setting, not schedtrace
		{"darwin", "", false},
		{"windows", "", false},
	} {
		if got := Wanted(tc.goos, tc.godebug); got != tc.want {
			t.Errorf("Wanted(%q, %q) = %v, want %v", tc.goos, tc.godebug, got, tc.want)
		}
	}
}

// exec records what Reexec asked to execute.
type exec struct {
	calls      int
	path       string
	argv, envv []string
	err        error
}

func (e *exec) run(path string, argv, envv []string) error {
	e.calls++
	e.path, e.argv, e.envv = path, argv, envv
	return e.err
}

func godebugs(env []string) []string {
	var out []string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			out = append(out, v)
		}
	}
	return out
}

// Reexec starts the same executable with the same arguments and
// environment, GODEBUG extended with Setting and given once.
func TestReexecAddsTheSetting(t *testing.T) {
	args := []string{"meshlens-proxy", "--node", "mesh/m/virtualNode/n"}
	for _, tc := range []struct {
		name    string
		environ []string
		want    string
	}{
		{"no GODEBUG", []string{"PATH=/bin", "HOME=/root"}, Setting},
		{"empty GODEBUG", []string{"PATH=/bin", "GODEBUG="}, Setting},
		{"other settings kept", []string{"GODEBUG=madvdontneed=1,gctrace=0", "PATH=/bin"}, "madvdontneed=1,gctrace=0," + Setting},
		{"repeated: the first is the one in effect", []string{"GODEBUG=a=1", "PATH=/bin", "GODEBUG=b=2"}, "a=1," + Setting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var x exec
			if err := Reexec(Process{GOOS: "linux", Args: args, Environ: tc.environ, Exec: x.run}); err != nil {
				t.Fatal(err)
			}
			if x.calls != 1 || x.path != Self || !slices.Equal(x.argv, args) {
				t.Fatalf("exec %d times: %q %q", x.calls, x.path, x.argv)
			}
			if got := godebugs(x.envv); len(got) != 1 || got[0] != tc.want {
				t.Errorf("GODEBUG in the new environment %q, want [%q]", got, tc.want)
			}
			var others, wantOthers []string
			for _, kv := range x.envv {
				if !strings.HasPrefix(kv, "GODEBUG=") {
					others = append(others, kv)
				}
			}
			for _, kv := range tc.environ {
				if !strings.HasPrefix(kv, "GODEBUG=") {
					wantOthers = append(wantOthers, kv)
				}
			}
			if !slices.Equal(others, wantOthers) {
				t.Errorf("rest of the environment %q, want %q", others, wantOthers)
			}
			if Wanted("linux", godebugs(x.envv)[0]) {
				t.Errorf("the new process would start again: GODEBUG %q", godebugs(x.envv)[0])
			}
		})
	}
}

func TestReexecNotWanted(t *testing.T) {
	for _, p := range []Process{
		{GOOS: "linux", Environ: []string{"GODEBUG=schedtrace=0"}},
		{GOOS: "linux", Environ: []string{"GODEBUG=" + Setting}},
		{GOOS: "darwin", Environ: nil},
	} {
		var x exec
		p.Exec = x.run
		if err := Reexec(p); err != nil || x.calls != 0 {
			t.Errorf("%+v: exec %d times, err %v", p, x.calls, err)
		}
	}
}

// A failed exec is reported, naming what was tried; the caller goes on.
func TestReexecFails(t *testing.T) {
	x := exec{err: errors.New("permission denied")}
	err := Reexec(Process{GOOS: "linux", Args: []string{"p"}, Environ: nil, Exec: x.run})
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), Setting) || !strings.Contains(err.Error(), Self) {
		t.Errorf("err %v", err)
	}
}

// Restore gives the started process back the environment it was started
// from, and says whether the setting was there.
func TestRestore(t *testing.T) {
	for _, tc := range []struct {
		godebug string
		set     bool
		want    string // "-": unset
		on      bool
	}{
		{Setting, true, "-", true},
		{"madvdontneed=1," + Setting, true, "madvdontneed=1", true},
		{"schedtrace=0", true, "schedtrace=0", false},
		{"", false, "", false},
		{"gctrace=1", true, "gctrace=1", false},
	} {
		env := map[string]string{}
		if tc.set {
			env["GODEBUG"] = tc.godebug
		}
		on, err := Restore(func(k string) string { return env[k] },
			func(k, v string) error { env[k] = v; return nil },
			func(k string) error { delete(env, k); return nil })
		got, ok := env["GODEBUG"]
		if !ok {
			got = "-"
		}
		if !tc.set && !ok {
			got = ""
		}
		if err != nil || on != tc.on || got != tc.want {
			t.Errorf("GODEBUG %q: on %v, now %q, err %v; want %v and %q", tc.godebug, on, got, err, tc.on, tc.want)
		}
	}
}

// Reexec and Restore together: the process Reexec starts does not start
// again, and what it starts sees the GODEBUG of the first.
func TestReexecThenRestore(t *testing.T) {
	first := []string{"GODEBUG=gctrace=0", "A=1"}
	var x exec
	if err := Reexec(Process{GOOS: "linux", Args: []string{"p"}, Environ: first, Exec: x.run}); err != nil || x.calls != 1 {
		t.Fatalf("exec %d, err %v", x.calls, err)
	}
	env := map[string]string{}
	for _, kv := range x.envv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var again exec
	if err := Reexec(Process{GOOS: "linux", Args: []string{"p"}, Environ: x.envv, Exec: again.run}); err != nil || again.calls != 0 {
		t.Fatalf("the started process would start again: exec %d, err %v", again.calls, err)
	}
	on, err := Restore(func(k string) string { return env[k] },
		func(k, v string) error { env[k] = v; return nil },
		func(k string) error { delete(env, k); return nil })
	if err != nil || !on || env["GODEBUG"] != "gctrace=0" || env["A"] != "1" {
		t.Errorf("on %v, err %v, env %v", on, err, env)
	}
}

// For any GODEBUG the process may be started with: when Reexec starts the
// process again, the new environment has one GODEBUG, with which the new
// process does not start again, and Restore gives back the value the
// first process saw (unset when it was empty or unset).
func FuzzSysmonGODEBUG(f *testing.F) {
	for _, s := range []string{"", "gctrace=1", "schedtrace=0", Setting, "a=1,,b=2", " schedtrace = 5", "x=" + Setting, ",", "=", "schedtrace"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, godebug string, set bool) {
		if strings.ContainsRune(godebug, 0) {
			return // not an environment value
		}
		environ := []string{"PATH=/bin"}
		if set {
			environ = append(environ, "GODEBUG="+godebug)
		}
		var x exec
		if err := Reexec(Process{GOOS: "linux", Args: []string{"p"}, Environ: environ, Exec: x.run}); err != nil {
			t.Fatal(err)
		}
		seen := "" // what the first process's os.Getenv("GODEBUG") said
		if set {
			seen = godebug
		}
		if x.calls == 0 {
			if Wanted("linux", seen) {
				t.Fatalf("GODEBUG %q (set %v): not restarted though wanted", godebug, set)
			}
			return
		}
		got := godebugs(x.envv)
		if len(got) != 1 {
			t.Fatalf("GODEBUG %q: new environment has %d GODEBUG", godebug, len(got))
		}
		if Wanted("linux", got[0]) {
			t.Fatalf("GODEBUG %q: the started process (GODEBUG %q) would start again", godebug, got[0])
		}
		env := map[string]string{"GODEBUG": got[0]}
		on, err := Restore(func(k string) string { return env[k] },
			func(k, v string) error { env[k] = v; return nil },
			func(k string) error { delete(env, k); return nil })
		if err != nil || !on {
			t.Fatalf("GODEBUG %q: Restore on %v, err %v", godebug, on, err)
		}
		if env["GODEBUG"] != seen {
			t.Errorf("GODEBUG %q (set %v): restored as %q", godebug, set, env["GODEBUG"])
		}
	})
}
