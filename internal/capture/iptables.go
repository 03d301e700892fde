package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// commandTimeout bounds one run of an iptables binary.
const commandTimeout = 20 * time.Second

// Runner runs a program with stdin and returns its standard output; an
// error carries its standard error. Tests replace it.
type Runner func(ctx context.Context, stdin string, name string, args ...string) (string, error)

// Exec is the Runner that runs real programs, each bounded by
// commandTimeout.
func Exec(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			return out.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out.String(), nil
}

// Backend is an iptables binary and its -save and -restore companions.
type Backend struct {
	// Iptables, Save and Restore are the programs (names on PATH or
	// paths).
	Iptables, Save, Restore string
	// Mode is what the binary says it drives: "nf_tables" or "legacy".
	Mode string
	run  Runner
}

// Detect picks the iptables backend. name, when set (MESHLENS_IPTABLES),
// is the binary to use: iptables, iptables-nft, iptables-legacy or a
// path to one of them. Otherwise, as Kubernetes' iptables wrapper does,
// when both iptables-nft and iptables-legacy exist the one that already
// holds more rules in this network namespace is the host's (rules of the
// two backends do not order against each other, so ours must join the
// host's); with a tie or only one of them, plain iptables.
func Detect(ctx context.Context, run Runner, lookPath func(string) (string, error), name string) (*Backend, error) {
	if run == nil {
		run = Exec
	}
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	if name == "" {
		name = "iptables"
		nft, nerr := lookPath("iptables-nft")
		legacy, lerr := lookPath("iptables-legacy")
		if nerr == nil && lerr == nil {
			nn := countRules(ctx, run, companion(nft, "save"))
			nl := countRules(ctx, run, companion(legacy, "save"))
			switch {
			case nl > nn:
				name = legacy
			case nn > nl:
				name = nft
			}
		}
	}
	path, err := lookPath(name)
	if err != nil {
		return nil, fmt.Errorf("iptables binary %q: %w (install the iptables package, or set %s)", name, err, EnvIptables)
	}
	b := &Backend{Iptables: path, Save: companion(path, "save"), Restore: companion(path, "restore"), run: run}
	out, err := run(ctx, "", path, "--version")
	if err != nil {
		return nil, fmt.Errorf("iptables backend: %w", err)
	}
	switch {
	case strings.Contains(out, "nf_tables"):
		b.Mode = "nf_tables"
	case strings.Contains(out, "legacy"):
		b.Mode = "legacy"
	default:
		b.Mode = "legacy" // versions before 1.8 had only the legacy backend
	}
	return b, nil
}

// companion is iptables-save or iptables-restore next to an iptables
// binary: iptables-nft -> iptables-nft-save.
func companion(path, what string) string {
	dir, base := filepath.Split(path)
	return dir + base + "-" + what
}

// countRules counts the rules (-A lines) a -save program prints; a
// program that fails counts none.
func countRules(ctx context.Context, run Runner, save string) int {
	out, err := run(ctx, "", save)
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "-A ") {
			n++
		}
	}
	return n
}

// natState is what the nat table holds of ours: the jump rules (each
// counted, for duplicates a crashed run may have left) and our chains.
type natState struct {
	jumps  map[string]int // "PREROUTING MESHLENS_INBOUND" -> count
	chains map[string]bool
}

func (b *Backend) state(ctx context.Context) (natState, error) {
	out, err := b.run(ctx, "", b.Save, "-t", "nat")
	if err != nil {
		return natState{}, fmt.Errorf("read the nat table: %w", err)
	}
	return parseNAT(out), nil
}

// parseNAT reads iptables-save output of the nat table for our chains
// and the jumps to them.
func parseNAT(out string) natState {
	s := natState{jumps: map[string]int{}, chains: map[string]bool{}}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		for _, j := range jumps {
			if line == ":"+j.to || strings.HasPrefix(line, ":"+j.to+" ") {
				s.chains[j.to] = true
			}
			if line == "-A "+j.from+" -j "+j.to {
				s.jumps[j.from+" "+j.to]++
			}
		}
	}
	return s
}

// Install removes what a previous run may have left, then installs the
// rules of c in one iptables-restore transaction. It returns the rules.
func (b *Backend) Install(ctx context.Context, c Config) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	if err := b.Remove(ctx); err != nil {
		return "", err
	}
	rules := Rules(c)
	if _, err := b.run(ctx, rules, b.Restore, "--noflush", "-w", "5"); err != nil {
		return "", fmt.Errorf("install capture rules: %w", err)
	}
	return rules, nil
}

// Remove deletes the jumps to our chains and the chains themselves; other
// rules stay as they are. Nothing installed is not an error.
func (b *Backend) Remove(ctx context.Context) error {
	s, err := b.state(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, j := range jumps {
		for range s.jumps[j.from+" "+j.to] {
			if _, err := b.run(ctx, "", b.Iptables, "-w", "5", "-t", "nat", "-D", j.from, "-j", j.to); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	for _, j := range jumps {
		if !s.chains[j.to] {
			continue
		}
		if _, err := b.run(ctx, "", b.Iptables, "-w", "5", "-t", "nat", "-F", j.to); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := b.run(ctx, "", b.Iptables, "-w", "5", "-t", "nat", "-X", j.to); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove capture rules: %w", err)
	}
	return nil
}

// Installed reports whether both jumps to our chains are in place.
func (b *Backend) Installed(ctx context.Context) (bool, error) {
	s, err := b.state(ctx)
	if err != nil {
		return false, err
	}
	for _, j := range jumps {
		if s.jumps[j.from+" "+j.to] == 0 {
			return false, nil
		}
	}
	return true, nil
}
