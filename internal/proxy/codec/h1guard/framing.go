package h1guard

import "math"

// clValue reads Content-Length value bytes from p[i:] up to the end of
// the line, as net/http's strconv.ParseUint(value, 10, 63) of the trimmed
// value would.
func (s *scanner) clValue(p []byte, i int) int {
	for ; i < len(p); i++ {
		b := p[i]
		switch {
		case '0' <= b && b <= '9':
			switch s.clst {
			case clPre, clDigits:
				d := uint64(b - '0')
				if s.curVal > (math.MaxInt64-d)/10 {
					s.clst = clBad
					continue
				}
				s.curVal = s.curVal*10 + d
				s.curLen++
				s.clst = clDigits
			case clPost:
				s.clst = clBad
			}
		case b == ' ' || b == '\t':
			if s.clst == clDigits {
				s.clst = clPost
			}
		case b == '\r':
			s.st = stCLValueCR
			return i + 1
		case b == '\n':
			s.st = stLineStart
			return i + 1
		default:
			s.clst = clBad
		}
	}
	return i
}

// chunkLine scans the chunk-size lines and the CRLF after chunk data, as
// net/http's chunked reader accepts them: 1 to 16 hex digits, then
// optional SP/HT or ';' and extensions, then CRLF with no other CR.
// Like head, it is one byte-by-byte loop over the states on purpose: it
// runs over every chunk line of every chunked body.
func (s *scanner) chunkLine(p []byte, i int) int {
	for i < len(p) {
		b := p[i]
		switch s.st {
		case stChunkSize:
			if d := unhex[b]; d < 16 {
				if s.digits == 16 {
					s.st = stDone
					return i
				}
				s.digits++
				s.remain = s.remain<<4 | uint64(d)
				i++
				continue
			}
			if s.digits == 0 {
				s.st = stDone
				return i
			}
			switch b {
			case ';':
				s.st = stChunkExt
			case ' ', '\t':
				s.st = stChunkSizeWS
			case '\r':
				s.st = stChunkSizeLF
			default:
				s.st = stDone
				return i
			}
			i++

		case stChunkSizeWS:
			switch b {
			case ' ', '\t':
			case '\r':
				s.st = stChunkSizeLF
			default:
				s.st = stDone
				return i
			}
			i++

		case stChunkExt:
			for i < len(p) && p[i] != '\r' && p[i] != '\n' {
				i++
			}
			if i == len(p) {
				return i
			}
			if p[i] == '\n' {
				s.st = stDone // bare LF
				return i
			}
			s.st = stChunkSizeLF
			i++

		case stChunkSizeLF:
			if b != '\n' {
				s.st = stDone
				return i
			}
			i++
			if s.remain == 0 {
				s.st = stTrailerStart
				s.budget = s.limit
			} else {
				s.st = stChunkData
			}
			return i

		case stChunkDataCR:
			if b != '\r' {
				s.st = stDone
				return i
			}
			s.st = stChunkDataLF
			i++

		case stChunkDataLF:
			if b != '\n' {
				s.st = stDone
				return i
			}
			s.st = stChunkSize
			s.remain, s.digits = 0, 0
			i++

		default:
			return i
		}
	}
	return i
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// unhex maps a hex digit to its value and anything else to 255.
var unhex = func() (t [256]uint8) {
	for i := range t {
		t[i] = 255
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = uint8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = uint8(c - 'a' + 10)
		t[c-'a'+'A'] = uint8(c - 'a' + 10)
	}
	return t
}()
