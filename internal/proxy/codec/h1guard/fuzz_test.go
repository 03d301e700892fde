package h1guard

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	for _, c := range scanCases {
		in, _ := c.expand()
		if len(in) > 4096 {
			continue
		}
		f.Add(in, uint64(len(c.name)), uint16(0))
		f.Add(in, uint64(len(c.name)), uint16(40))
	}
}

// FuzzScanner checks that the scanner never panics, changes at most one
// byte (a ':' turned NUL, with a reason, after which it stops), and does
// the same whatever the read sizes.
func FuzzScanner(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte, seed uint64, limit uint16) {
		lim := int64(limit)
		if lim == 0 {
			lim = 1 << 20
		}
		var whole scanner
		whole.init(lim)
		out := bytes.Clone(in)
		whole.scan(out)

		diffs := 0
		for i := range in {
			if in[i] != out[i] {
				diffs++
				if in[i] != ':' || out[i] != 0 {
					t.Fatalf("byte %d changed from %q to %q", i, in[i], out[i])
				}
			}
		}
		switch {
		case diffs > 1:
			t.Fatalf("%d bytes changed", diffs)
		case diffs == 1 && (whole.reason == nil || whole.st != stDone):
			t.Fatalf("a byte changed without a rejection (state %d, reason %v)", whole.st, whole.reason)
		case diffs == 0 && whole.reason != nil:
			t.Fatalf("rejected (%v) without changing a byte", whole.reason)
		}

		r := rand.New(rand.NewPCG(seed, seed>>7))
		var split scanner
		split.init(lim)
		out2 := bytes.Clone(in)
		for p := out2; len(p) > 0; {
			n := min(len(p), 1+r.IntN(1+r.IntN(64)))
			split.scan(p[:n])
			p = p[n:]
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("split reads changed byte %d differently", firstDiff(out, out2))
		}
		if whole.st == stDone && split.st == stDone {
			// Once stopped, only the outcome matters.
			whole, split = scanner{nreq: whole.nreq, reason: whole.reason}, scanner{nreq: split.nreq, reason: split.reason}
		}
		if whole != split {
			t.Fatalf("state after one read %+v, after split reads %+v", whole, split)
		}
	})
}

// FuzzFramingMatchesNetHTTP checks the scanner's request boundaries
// against net/http's own request parser: wherever net/http reads a
// request and its whole body, the scanner must agree on where the next
// request starts and must still be inspecting, unless it rejected an
// earlier request.
func FuzzFramingMatchesNetHTTP(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte, _ uint64, _ uint16) {
		// The scanner's boundaries: after byte i, a new request began.
		var s scanner
		s.init(1 << 20)
		buf := bytes.Clone(in)
		var ours []int
		for i := range buf {
			n := s.nreq
			s.scan(buf[i : i+1])
			if s.nreq != n {
				ours = append(ours, i+1)
			}
			if s.st == stDone {
				break
			}
		}
		if s.reason != nil {
			return // net/http never sees past a rejected request
		}

		// net/http's, read as its server does.
		cr := &countReader{r: bytes.NewReader(in)}
		br := bufio.NewReader(cr)
		var theirs []int
		lastPost := false
		for {
			if lastPost {
				peek, _ := br.Peek(4)
				k := 0
				for k < len(peek) && (peek[k] == '\r' || peek[k] == '\n') {
					k++
				}
				br.Discard(k)
			}
			req, err := http.ReadRequest(br)
			if err != nil || req.ProtoMajor != 1 {
				break
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				break
			}
			lastPost = req.Method == "POST"
			theirs = append(theirs, cr.n-br.Buffered())
		}
		for i, off := range theirs {
			if i >= len(ours) || ours[i] != off {
				t.Fatalf("net/http's request %d ends at %d; the scanner's boundaries are %v (state %d)", i+1, off, ours, s.st)
			}
		}
	})
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if errors.Is(err, io.EOF) {
		return n, io.EOF
	}
	return n, err
}
