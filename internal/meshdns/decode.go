package meshdns

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
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

// decodeQuery decodes a DNS query: a message of at most MaxQuerySize
// bytes with the QR bit clear, opcode QUERY and exactly one question.
// When the header could be read but the rest is not such a query, the
// returned id and ok let the caller answer FORMERR (or NOTIMP) instead of
// staying silent; a packet shorter than a header gets nothing.
func decodeQuery(b []byte) (m *dns.Msg, id uint16, hdrOK bool, err error) {
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
	m = new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return nil, id, true, fmt.Errorf("malformed query: %w", err)
	}
	if m.Opcode != dns.OpcodeQuery {
		return nil, id, true, errOpcode
	}
	if len(m.Question) != 1 {
		return nil, id, true, errQuestions
	}
	return m, id, true, nil
}
