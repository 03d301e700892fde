package capture

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// requireEnv, when set (make test and CI set it), turns a missing tool or
// privilege into a failure instead of a skip.
const requireEnv = "MESHLENS_REQUIRE_COLLECTORS"

// netnsRunner creates a network namespace for the test and returns a
// Runner whose programs run in it. It skips unless the test runs as root
// with ip and iptables installed.
func netnsRunner(t *testing.T) Runner {
	t.Helper()
	skip := func(msg string) {
		if os.Getenv(requireEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		skip("installing iptables rules needs root (the test creates a network namespace of its own)")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip(tool + " is not installed (scripts/install-test-deps.sh installs it)")
		}
	}
	ns := fmt.Sprintf("mlcap-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	if len(ns) > 60 {
		ns = ns[:60]
	}
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	return func(ctx context.Context, stdin, name string, args ...string) (string, error) {
		return Exec(ctx, stdin, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	}
}

// natRules is the nat table's rules in iptables -S form.
func natRules(t *testing.T, run Runner) string {
	t.Helper()
	out, err := run(context.Background(), "", "iptables", "-w", "5", "-t", "nat", "-S")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInstallRemoveInNetns(t *testing.T) {
	run := netnsRunner(t)
	ctx := context.Background()
	// A rule of someone else's, which must survive install and remove.
	if _, err := run(ctx, "", "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "9", "-j", "RETURN"); err != nil {
		t.Fatal(err)
	}
	before := natRules(t, run)
	b, err := Detect(ctx, run, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if b.Mode != "nf_tables" && b.Mode != "legacy" {
		t.Fatalf("mode %q", b.Mode)
	}
	c, err := FromEnv(envOf(map[string]string{EnvAppPorts: "8080,8443"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Install(ctx, c); err != nil {
		t.Fatal(err)
	}
	once := natRules(t, run)
	for _, want := range []string{
		"-A PREROUTING -j MESHLENS_INBOUND",
		"-A OUTPUT -j MESHLENS_OUTBOUND",
		"-A MESHLENS_INBOUND -p tcp -m multiport --dports 8080,8443 -j REDIRECT --to-ports 15000",
		"-A MESHLENS_OUTBOUND -m owner --uid-owner 1337 -j RETURN",
		"-A MESHLENS_OUTBOUND -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053",
		"-A MESHLENS_OUTBOUND -p tcp -j REDIRECT --to-ports 15001",
		"-A OUTPUT -p tcp -m tcp --dport 9 -j RETURN",
	} {
		if !strings.Contains(once, want+"\n") {
			t.Errorf("installed rules lack %q:\n%s", want, once)
		}
	}
	if ok, err := b.Installed(ctx); err != nil || !ok {
		t.Fatalf("Installed = %v, %v", ok, err)
	}

	// A crashed run left its rules and a stray duplicate jump: installing
	// again yields the same rules, once.
	if _, err := run(ctx, "", "iptables", "-t", "nat", "-A", "OUTPUT", "-j", ChainOutbound); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Install(ctx, c); err != nil {
		t.Fatal(err)
	}
	if again := natRules(t, run); again != once {
		t.Fatalf("second install changed the rules:\n%s\nfirst:\n%s", again, once)
	}

	if err := b.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if after := natRules(t, run); after != before {
		t.Fatalf("after remove:\n%s\nbefore install:\n%s", after, before)
	}
	if ok, err := b.Installed(ctx); err != nil || ok {
		t.Fatalf("Installed after remove = %v, %v", ok, err)
	}
	// Removing what is not there is not an error.
	if err := b.Remove(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDetectPrefersTheBackendWithRules(t *testing.T) {
	t.Parallel()
	saves := map[string]string{
		"/sbin/iptables-nft-save":    "*nat\nCOMMIT\n",
		"/sbin/iptables-legacy-save": "*nat\n-A OUTPUT -j KUBE-SERVICES\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n",
	}
	run := func(_ context.Context, _ string, name string, args ...string) (string, error) {
		if len(args) == 1 && args[0] == "--version" {
			if strings.Contains(name, "legacy") {
				return "iptables v1.8.9 (legacy)\n", nil
			}
			return "iptables v1.8.9 (nf_tables)\n", nil
		}
		if out, ok := saves[name]; ok {
			return out, nil
		}
		return "", fmt.Errorf("unexpected %s %v", name, args)
	}
	look := func(name string) (string, error) {
		if strings.HasPrefix(name, "/") {
			return name, nil
		}
		return "/sbin/" + name, nil
	}
	b, err := Detect(context.Background(), run, look, "")
	if err != nil {
		t.Fatal(err)
	}
	if b.Iptables != "/sbin/iptables-legacy" || b.Restore != "/sbin/iptables-legacy-restore" || b.Mode != "legacy" {
		t.Fatalf("picked %+v, want iptables-legacy", b)
	}
	saves["/sbin/iptables-legacy-save"] = ""
	if b, err = Detect(context.Background(), run, look, ""); err != nil || b.Iptables != "/sbin/iptables" || b.Mode != "nf_tables" {
		t.Fatalf("with no rules anywhere picked %+v, %v; want plain iptables", b, err)
	}
	if b, err = Detect(context.Background(), run, look, "iptables-legacy"); err != nil || b.Iptables != "/sbin/iptables-legacy" {
		t.Fatalf("explicit name: %+v, %v", b, err)
	}
}
