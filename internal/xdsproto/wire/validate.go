package wire

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// This file holds what the mirrors' generated Validate methods share:
// their error, the lazily compiled patterns of protoc-gen-validate's
// `pattern` and `well_known_regex` rules, and its well-known string
// formats.

// ValidationError is a violated protoc-gen-validate rule; its text is
// protoc-gen-validate's Go output's: "invalid Cluster.Name: value length
// must be at least 1 runes".
type ValidationError struct {
	Message string // the message's Go type name
	Field   string // the field's Go name, with [index] or [key] for an element
	Reason  string
	Cause   error // what an embedded message's Validate returned
}

func (e ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid ")
	b.WriteString(e.Message)
	b.WriteByte('.')
	b.WriteString(e.Field)
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Cause != nil {
		b.WriteString(" | caused by: ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns the embedded message's error.
func (e ValidationError) Unwrap() error { return e.Cause }

// Invalid is the error of message msg's field violating a rule.
func Invalid(msg, field, reason string) error {
	return ValidationError{Message: msg, Field: field, Reason: reason}
}

// Embedded is the error of message msg's field holding a message that
// failed validation with cause.
func Embedded(msg, field string, cause error) error {
	return ValidationError{Message: msg, Field: field, Reason: "embedded message failed validation", Cause: cause}
}

// Index names an element of a repeated or map field: field[idx].
func Index(field string, idx any) string { return fmt.Sprintf("%s[%v]", field, idx) }

// Pattern is a regular expression compiled when it is first matched, so
// that declaring one runs nothing when the program starts:
//
//	var p = wire.Pattern{Expr: "^[a-z]+$"}
type Pattern struct {
	Expr string
	once sync.Once
	re   *regexp.Regexp
}

func (p *Pattern) compiled() *regexp.Regexp {
	p.once.Do(func() { p.re = regexp.MustCompile(p.Expr) })
	return p.re
}

// MatchString reports whether s matches p.
func (p *Pattern) MatchString(s string) bool { return p.compiled().MatchString(s) }

// Match reports whether b matches p.
func (p *Pattern) Match(b []byte) bool { return p.compiled().Match(b) }

// The patterns protoc-gen-validate's well_known_regex rules stand for
// (its module/checker.go).
var (
	// HTTPHeaderName is HTTP_HEADER_NAME (strict).
	HTTPHeaderName = Pattern{Expr: "^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$"}
	// HTTPHeaderValue is HTTP_HEADER_VALUE (strict).
	HTTPHeaderValue = Pattern{Expr: "^[^\u0000-\u0008\u000A-\u001F\u007F]*$"}
	// HeaderString is either with strict = false.
	HeaderString = Pattern{Expr: "^[^\u0000\u000A\u000D]*$"}
	// UUID is the uuid rule's pattern.
	UUID = Pattern{Expr: "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}
)

// IsIP reports whether s is an IP address (the ip rule).
func IsIP(s string) bool { return net.ParseIP(s) != nil }

// IsIPv4 reports whether s is an IPv4 address (the ipv4 rule).
func IsIPv4(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.To4() != nil
}

// IsIPv6 reports whether s is an IPv6 address (the ipv6 rule).
func IsIPv6(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.To4() == nil
}

// IsIPBytes, IsIPv4Bytes and IsIPv6Bytes are the bytes rules ip, ipv4
// and ipv6.
func IsIPBytes(b []byte) bool   { return net.IP(b).To16() != nil }
func IsIPv4Bytes(b []byte) bool { return net.IP(b).To4() != nil }
func IsIPv6Bytes(b []byte) bool { return net.IP(b).To16() != nil && net.IP(b).To4() == nil }

// Hostname checks the hostname rule, as protoc-gen-validate does.
func Hostname(host string) error {
	s := strings.ToLower(strings.TrimSuffix(host, "."))
	if len(host) > 253 {
		return fmt.Errorf("hostname cannot exceed 253 characters")
	}
	for _, part := range strings.Split(s, ".") {
		if l := len(part); l == 0 || l > 63 {
			return fmt.Errorf("hostname part must be non-empty and cannot exceed 63 characters")
		}
		if part[0] == '-' {
			return fmt.Errorf("hostname parts cannot begin with hyphens")
		}
		if part[len(part)-1] == '-' {
			return fmt.Errorf("hostname parts cannot end with hyphens")
		}
		for _, r := range part {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return fmt.Errorf("hostname parts can only contain alphanumeric characters or hyphens, got %q", string(r))
			}
		}
	}
	return nil
}

// IsAddress reports whether s is a hostname or an IP address (the
// address rule).
func IsAddress(s string) bool { return Hostname(s) == nil || IsIP(s) }

// URI checks the uri rule (an absolute URI) when abs, the uri_ref rule
// otherwise.
func URI(s string, abs bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if abs && !u.IsAbs() {
		return fmt.Errorf("value must be absolute")
	}
	return nil
}
