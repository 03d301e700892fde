package store

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// ParseEtcdURL reads the --store value of a store kept in etcd:
//
//	etcd://[user[:password]@]host:port[,host:port...][/prefix/]
//	etcds://...   the same, over TLS
//
// It returns options holding the endpoints, the credentials and the key
// prefix (default DefaultEtcdPrefix). A value that is not such a URL is an
// error naming what is wrong.
func ParseEtcdURL(s string) (EtcdOptions, error) {
	var opts EtcdOptions
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "etcd" && scheme != "etcds") {
		return opts, fmt.Errorf("store %q: want etcd://host:port[,host:port...] (etcds:// for TLS)", s)
	}
	endpointScheme := "http://"
	if scheme == "etcds" {
		endpointScheme = "https://"
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	hosts, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		userinfo := hosts[:at]
		hosts = hosts[at+1:]
		user, pass, _ := strings.Cut(userinfo, ":")
		var err error
		if opts.Username, err = url.PathUnescape(user); err != nil {
			return EtcdOptions{}, fmt.Errorf("store %q: user: %w", redact(s), err)
		}
		if opts.Password, err = url.PathUnescape(pass); err != nil {
			return EtcdOptions{}, fmt.Errorf("store %q: password: %w", redact(s), err)
		}
		if opts.Username == "" {
			return EtcdOptions{}, fmt.Errorf("store %q: user is empty", redact(s))
		}
	}
	if hosts == "" {
		return EtcdOptions{}, fmt.Errorf("store %q: no etcd endpoint", redact(s))
	}
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return EtcdOptions{}, fmt.Errorf("store %q: endpoint %q: want host:port", redact(s), h)
		}
		opts.Endpoints = append(opts.Endpoints, endpointScheme+h)
	}
	if path != "" {
		if strings.Contains(path, "?") || strings.Contains(path, "#") {
			return EtcdOptions{}, fmt.Errorf("store %q: the prefix may not hold ? or #", redact(s))
		}
		opts.Prefix = "/" + strings.TrimSuffix(path, "/") + "/"
	}
	return opts, nil
}

// redact hides a password in a store URL for error messages and logs.
func redact(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	hosts, path, hasPath := strings.Cut(rest, "/")
	at := strings.LastIndex(hosts, "@")
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(hosts[:at], ":")
	if hasPass {
		user += ":xxxxx"
	}
	out := scheme + "://" + user + hosts[at:]
	if hasPath {
		out += "/" + path
	}
	return out
}

// Redact hides the password of a --store URL, for logs.
func Redact(s string) string { return redact(s) }

// EtcdTLS builds the client TLS configuration from etcdctl's options:
// a CA bundle to verify the members (--etcd-cacert), and a client
// certificate and key (--etcd-cert, --etcd-key) for a cluster that
// checks clients. Every argument may be empty.
func EtcdTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("etcd-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd-cacert %s: no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("etcd-cert and etcd-key: give both or neither")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd-cert/etcd-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
