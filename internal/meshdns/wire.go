package meshdns

import (
	"encoding/binary"
	"errors"

	"golang.org/x/net/dns/dnsmessage"
)

// minUDPSize is the largest response every client takes over UDP (RFC
// 1035 2.3.4); a smaller EDNS buffer size counts as this one (RFC 6891
// 6.2.5).
const minUDPSize = 512

// typeTSIG is the type of a TSIG record (RFC 8945), which dnsmessage
// does not name.
const typeTSIG dnsmessage.Type = 250

var errLayout = errors.New("message ends inside a record")

// rrSpan is where one resource record lies in a message: msg[start:end],
// its owner name ending at nameEnd.
type rrSpan struct {
	start, nameEnd, end int
	typ                 dnsmessage.Type
}

// msgLayout is where the sections of a message lie. dnsmessage decodes
// records but does not say where they are; the server needs that to
// forward a query without trailing bytes and to truncate a forwarded
// response without re-encoding it.
type msgLayout struct {
	an, ns, ar int // the header's counts of answers, authorities, additionals
	qEnd       int // where the question section ends
	rrs        []rrSpan
}

// end is where the message's last section ends.
func (l *msgLayout) end() int {
	if len(l.rrs) == 0 {
		return l.qEnd
	}
	return l.rrs[len(l.rrs)-1].end
}

// layout walks msg's questions and records by their lengths alone (it
// follows no compression pointer): every name must end in msg and every
// record's data too.
func layout(msg []byte) (*msgLayout, error) {
	if len(msg) < headerSize {
		return nil, errLayout
	}
	count := func(i int) int { return int(binary.BigEndian.Uint16(msg[4+2*i:])) }
	l := &msgLayout{an: count(1), ns: count(2), ar: count(3)}
	off := headerSize
	var err error
	for range count(0) {
		if off, err = skipName(msg, off); err != nil {
			return nil, err
		}
		if off += 4; off > len(msg) {
			return nil, errLayout
		}
	}
	l.qEnd = off
	n := l.an + l.ns + l.ar
	// A record takes at least 11 bytes: do not trust the counts further.
	l.rrs = make([]rrSpan, 0, min(n, (len(msg)-off)/11))
	for range n {
		r := rrSpan{start: off}
		if off, err = skipName(msg, off); err != nil {
			return nil, err
		}
		if off+10 > len(msg) {
			return nil, errLayout
		}
		r.nameEnd = off
		r.typ = dnsmessage.Type(binary.BigEndian.Uint16(msg[off:]))
		off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
		if off > len(msg) {
			return nil, errLayout
		}
		r.end = off
		l.rrs = append(l.rrs, r)
	}
	return l, nil
}

// skipName returns where the name at msg[off:] ends: after its final
// empty label or its compression pointer.
func skipName(msg []byte, off int) (int, error) {
	for {
		if off >= len(msg) {
			return 0, errLayout
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1, nil
			}
			off += 1 + c
		case 0xC0:
			if off+2 > len(msg) {
				return 0, errLayout
			}
			return off + 2, nil
		default:
			return 0, errLayout
		}
	}
}

// truncate cuts a response down to size bytes (at least minUDPSize) for
// a UDP client, keeping what miekg/dns's Msg.Truncate kept: the header
// and questions, then as many records as fit in order (answers,
// authorities, additionals), never part of one, and the OPT record; the
// TC bit is set when a record was left out. It cuts the message as it
// came: the records kept are a prefix of it, so the compression pointers
// in them, which point back, stay right. A message that fits, or that has
// a TSIG record (which truncation would invalidate), is returned as is.
func truncate(msg []byte, size int) []byte {
	size = max(size, minUDPSize)
	if len(msg) <= size {
		return msg
	}
	l, err := layout(msg)
	if err != nil {
		return msg
	}
	extra := l.rrs[min(l.an+l.ns, len(l.rrs)):]
	if len(extra) > 0 && extra[len(extra)-1].typ == typeTSIG {
		return msg
	}
	// The OPT record (the last, if several), moved to the end, with the
	// root as its owner whatever name it had.
	opt := -1
	var optRR []byte
	for i := len(l.rrs) - 1; i >= l.an+l.ns; i-- {
		if r := l.rrs[i]; r.typ == dnsmessage.TypeOPT {
			opt = i
			optRR = append([]byte{0}, msg[r.nameEnd:r.end]...)
			break
		}
	}
	budget := size - len(optRR)
	// Records are kept up to the first that does not fit, and never past
	// the OPT record: those after it (rare, as OPT comes last) go.
	end, kept := l.qEnd, 0
	for i, r := range l.rrs {
		if i == opt || r.end > budget {
			break
		}
		end, kept = r.end, kept+1
	}
	out := cut(msg, l, end, kept, optRR)
	if !parses(out) {
		// A record pointed forward into what was cut: keep none.
		out = cut(msg, l, l.qEnd, 0, optRR)
	}
	others := len(l.rrs)
	if opt >= 0 {
		others--
	}
	if kept < others {
		out[2] |= 0x02 // TC
	}
	return out
}

// cut is msg's header and questions, its first kept records, ending at
// end, and optRR when not nil, with the header's counts set to match.
func cut(msg []byte, l *msgLayout, end, kept int, optRR []byte) []byte {
	out := make([]byte, 0, end+len(optRR))
	out = append(out, msg[:end]...)
	out = append(out, optRR...)
	an := min(kept, l.an)
	ns := min(kept-an, l.ns)
	ar := kept - an - ns
	if optRR != nil {
		ar++
	}
	binary.BigEndian.PutUint16(out[6:], uint16(an))
	binary.BigEndian.PutUint16(out[8:], uint16(ns))
	binary.BigEndian.PutUint16(out[10:], uint16(ar))
	return out
}

// parses reports whether msg decodes whole, as checkAnswer wants.
func parses(msg []byte) bool {
	var m dnsmessage.Message
	if m.Unpack(msg) != nil {
		return false
	}
	_, err := layout(msg)
	return err == nil
}
