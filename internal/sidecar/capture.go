package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/meshlens/meshlens/internal/capture"
	"github.com/meshlens/meshlens/internal/lifeline"
	"github.com/meshlens/meshlens/internal/nodeid"
)

// envCaptureChild marks the proxy process that a --capture supervisor
// started: it serves, the supervisor owns the rules.
const envCaptureChild = "MESHLENS_CAPTURE_CHILD"

// captureSupervisor reports whether this process is the one that installs
// the rules and runs the proxy under the ignored UID: --capture, not yet
// the child.
func (cfg *Config) captureSupervisor() bool {
	return cfg.Capture && cfg.Getenv(envCaptureChild) == ""
}

// supervise is `meshlens proxy --capture` started as root: it installs
// the capture rules, starts the same command again as the ignored UID
// and GID (the proxy's own traffic must not be captured, and a root
// process would be), forwards SIGTERM, SIGINT and SIGUSR1 to it, and
// when it exits removes the rules, so that a task's network is left as
// it was. If the supervisor itself is killed, its child stops as on
// SIGTERM (told twice: by the kernel's parent-death signal, and by its
// lifeline, internal/lifeline) and the rules stay until the next install
// replaces them.
func supervise(ctx context.Context, cfg Config, log *slog.Logger) error {
	var id nodeid.ID
	var err error
	if cfg.Node != "" {
		id, err = nodeid.Parse(cfg.Node)
	} else {
		id, err = nodeid.FromEnv(cfg.Getenv)
	}
	if err != nil {
		return &ConfigError{fmt.Errorf("node identity: %w", err)}
	}
	if id.Kind == nodeid.VirtualGateway {
		return configf("--capture is for a virtual node's sidecar: a virtual gateway takes its traffic on its listeners' own ports")
	}
	cc, err := capture.FromEnv(cfg.Getenv)
	if err != nil {
		return &ConfigError{fmt.Errorf("--capture: %w", err)}
	}
	for _, w := range capture.IgnoredEnv(cfg.Getenv) {
		log.Warn("App Mesh environment variable ignored", "reason", w)
	}
	if os.Geteuid() != 0 {
		return configf("--capture installs iptables rules and then runs the proxy as %s, which needs root (CAP_NET_ADMIN and CAP_SETUID); "+
			"without root, run `meshlens capture` in an init container and the proxy without --capture (with --dns-addr for mesh names)", ignoredIdentity(cc))
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--capture: find the meshlens binary: %w", err)
	}
	b, err := capture.Detect(ctx, nil, nil, cfg.Getenv(capture.EnvIptables))
	if err != nil {
		return fmt.Errorf("--capture: %w", err)
	}
	if _, err := b.Install(ctx, cc); err != nil {
		return fmt.Errorf("--capture: %w", err)
	}
	log.Info("capture rules installed", "iptables", b.Iptables, "mode", b.Mode, "app_ports", fmt.Sprint(cc.AppPorts),
		"ingress_port", cc.IngressPort, "egress_port", cc.EgressPort, "dns_port", cc.DNSPort, "ignore", ignoredIdentity(cc))
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Remove(rctx); err != nil {
			log.Error("capture rules not removed", "err", err)
			return
		}
		log.Info("capture rules removed")
	}()

	// Pdeathsig fires when the thread that started the child exits: keep
	// this goroutine on its thread for the child's whole life.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), envCaptureChild+"=1")
	line, err := lifeline.Attach(cmd)
	if err != nil {
		return fmt.Errorf("--capture: %w", err)
	}
	defer line.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, cfg.Stdout, cfg.Stderr
	uid, gid := uint32(0), uint32(0)
	if cc.IgnoreUID >= 0 {
		uid, gid = uint32(cc.IgnoreUID), uint32(cc.IgnoreUID)
	}
	if cc.IgnoreGID >= 0 {
		gid = uint32(cc.IgnoreGID)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
		Pdeathsig:  syscall.SIGTERM,
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	err = cmd.Start()
	line.Started()
	if err != nil {
		return fmt.Errorf("--capture: start the proxy as uid %d gid %d: %w", uid, gid, err)
	}
	log.Info("proxy started under capture", "pid", cmd.Process.Pid, "uid", uid, "gid", gid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ctxDone := ctx.Done()
	for {
		select {
		case s := <-sigs:
			cmd.Process.Signal(s)
		case <-ctxDone:
			ctxDone = nil
			cmd.Process.Signal(syscall.SIGTERM)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return fmt.Errorf("proxy exited: %s", ee.ProcessState)
			}
			return err
		}
	}
}

// ignoredIdentity describes whose traffic capture leaves alone.
func ignoredIdentity(cc capture.Config) string {
	switch {
	case cc.IgnoreUID >= 0 && cc.IgnoreGID >= 0:
		return fmt.Sprintf("uid %d, gid %d", cc.IgnoreUID, cc.IgnoreGID)
	case cc.IgnoreUID >= 0:
		return fmt.Sprintf("uid %d", cc.IgnoreUID)
	default:
		return fmt.Sprintf("gid %d", cc.IgnoreGID)
	}
}

// captureListeners completes cfg for a proxy whose traffic is captured
// (the child of a --capture supervisor): the ingress listener binds the
// capture's ingress port on every address (inbound connections are
// redirected from the host's addresses), the egress listener its egress
// port on loopback (REDIRECT from OUTPUT delivers to 127.0.0.1), the DNS
// server its DNS port on loopback, and the instance registers the first
// application port, where peers' traffic is redirected from, as a task
// in Cloud Map did. Addresses given on the command line must agree with
// the ports the rules send traffic to.
func captureListeners(cfg *Config, cc capture.Config) error {
	check := func(flag, addr string, port uint16, env string) error {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return configf("--%s %q: %v", flag, addr, err)
		}
		if p != strconv.Itoa(int(port)) {
			return configf("--%s %s: capture sends traffic to port %d (%s)", flag, addr, port, env)
		}
		return nil
	}
	if cfg.IngressAddr == "" {
		cfg.IngressAddr = net.JoinHostPort("0.0.0.0", strconv.Itoa(int(cc.IngressPort)))
	} else if err := check("ingress-addr", cfg.IngressAddr, cc.IngressPort, capture.EnvIngressPort); err != nil {
		return err
	}
	if cfg.EgressAddr == "" {
		cfg.EgressAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(int(cc.EgressPort)))
	} else if err := check("egress-addr", cfg.EgressAddr, cc.EgressPort, capture.EnvEgressPort); err != nil {
		return err
	}
	if cc.DNSPort != 0 {
		if cfg.DNSAddr == "" {
			cfg.DNSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(int(cc.DNSPort)))
		} else if err := check("dns-addr", cfg.DNSAddr, cc.DNSPort, capture.EnvDNSPort); err != nil {
			return err
		}
	}
	if len(cc.AppPorts) > 0 && cfg.registerPort == 0 {
		cfg.registerPort = int(cc.AppPorts[0])
	}
	return nil
}
