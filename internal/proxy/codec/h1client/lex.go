package h1client

import (
	"strconv"

	"github.com/meshlens/meshlens/internal/proxy/codec/h1lex"
)

var commonStatus = h1lex.InternTable(
	"200 OK", "201 Created", "202 Accepted", "204 No Content", "206 Partial Content",
	"301 Moved Permanently", "302 Found", "304 Not Modified", "400 Bad Request",
	"401 Unauthorized", "403 Forbidden", "404 Not Found", "500 Internal Server Error",
	"502 Bad Gateway", "503 Service Unavailable", "504 Gateway Timeout",
)

// validTarget rejects what would break the request line: controls, SP
// and DEL.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts the bytes of a reg-name, an IP literal in brackets
// and a port, like net/http's check of the Host header.
func validHost(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '"', '<', '>', '\\', '^', '`', '{', '|', '}', '/', '?', '#':
			return false
		}
	}
	return true
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func quote(s string) string { return strconv.Quote(s) }
