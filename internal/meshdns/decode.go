package meshdns

import (
	"errors"
	"fmt"

	"golang.org/x/net/dns/dnsmessage"
)

// MaxQuerySize bounds a query the server reads, over UDP or TCP. Queries
// name one question and perhaps an EDNS record; 4096 bytes is EDNS's
// usual buffer size and far more than any query needs.
const MaxQuerySize = 4096

// headerSize is a DNS message header's size.
const headerSize = 12

// Reasons a packet is not a query the server answers.
var (
	errTooShort  = errors.New("shorter than a DNS header")
	errTooLarge  = fmt.Errorf("larger than %d bytes", MaxQuerySize)
	errResponse  = errors.New("a response, not a query")
	errOpcode    = errors.New("opcode is not QUERY")
	errQuestions = errors.New("want exactly one question")
)

// query is a decoded query.
type query struct {
	hdr dnsmessage.Header
	q   dnsmessage.Question
	// name is the question's name in presentation form (escaped as RFC
	// 1035 master files have it, case kept): what is logged and, lower
	// case, looked up in the Table.
	name string
	// ednsSize is the UDP size of the query's OPT record; 0 without one.
	ednsSize int
	// wire is the query as it is forwarded: the packet up to the end of
	// its last record (trailing bytes are dropped).
	wire []byte
}

// decodeQuery decodes a DNS query: a message of at most MaxQuerySize
// bytes with the QR bit clear, opcode QUERY and exactly one question.
// Every section is decoded, so that a malformed packet is refused here
// rather than sent upstream: every record's data must lie within the
// message, and the data of the types dnsmessage knows (A, AAAA, CNAME,
// MX, NS, PTR, SOA, SRV, SVCB, HTTPS, TXT, OPT) must decode; the data of
// other types (a DNSKEY, say) is forwarded as it is, for the upstream to
// judge. When the header could be read but the rest is not such a query,
// the returned id and ok let the caller answer FORMERR (or NOTIMP)
// instead of staying silent; a packet shorter than a header gets nothing.
func decodeQuery(b []byte) (q *query, id uint16, hdrOK bool, err error) {
	if len(b) < headerSize {
		return nil, 0, false, errTooShort
	}
	id = uint16(b[0])<<8 | uint16(b[1])
	if b[2]&0x80 != 0 {
		// Never answer a response: two servers would echo each other.
		return nil, id, false, errResponse
	}
	if len(b) > MaxQuerySize {
		return nil, id, true, errTooLarge
	}
	var m dnsmessage.Message
	if err := m.Unpack(b); err != nil {
		return nil, id, true, fmt.Errorf("malformed query: %w", err)
	}
	l, err := layout(b)
	if err != nil {
		// A record claiming more data than the message has: dnsmessage
		// does not check that for the types of fixed size.
		return nil, id, true, fmt.Errorf("malformed query: %w", err)
	}
	if m.Header.OpCode != 0 {
		return nil, id, true, errOpcode
	}
	if len(m.Questions) != 1 {
		return nil, id, true, errQuestions
	}
	q = &query{hdr: m.Header, q: m.Questions[0], name: presentation(m.Questions[0].Name), wire: b[:l.end()]}
	for i := len(m.Additionals) - 1; i >= 0; i-- {
		if h := m.Additionals[i].Header; h.Type == dnsmessage.TypeOPT {
			q.ednsSize = int(h.Class)
			break
		}
	}
	return q, id, true, nil
}

// presentation is a name as RFC 1035 master files write it: its labels
// separated by dots, with the bytes that would be ambiguous escaped
// (\. \" etc.) and the unprintable ones written \DDD. dnsmessage refuses
// labels holding a dot, so every dot in n.Data separates labels.
func presentation(n dnsmessage.Name) string {
	raw := n.Data[:n.Length]
	if len(raw) <= 1 {
		return "."
	}
	plain := true
	for _, c := range raw {
		if c != '.' && (isLabelSpecial(c) || c < ' ' || c > '~') {
			plain = false
			break
		}
	}
	if plain {
		return string(raw)
	}
	out := make([]byte, 0, 2*len(raw))
	for _, c := range raw {
		switch {
		case c == '.':
			out = append(out, c)
		case isLabelSpecial(c):
			out = append(out, '\\', c)
		case c < ' ' || c > '~':
			out = append(out, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// isLabelSpecial reports whether c is escaped with a backslash in a
// label's presentation form.
func isLabelSpecial(c byte) bool {
	switch c {
	case '.', ' ', '\'', '@', ';', '(', ')', '"', '\\':
		return true
	}
	return false
}
