package h2client

import (
	"bytes"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2frame"
)

// Credentials and the fields new in every request (request id, trace
// context) go out as literals never indexed; the others may be indexed.
// Checked on the wire: the peer's decoder sees them never indexed.
func TestRequestFieldsNeverIndexed(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://app.local/x", nil)
	never := map[string]string{
		"x-request-id":  "6f1c2a0e-3b7d-4e8f-9a1b-2c3d4e5f6a7b",
		"traceparent":   "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"x-b3-traceid":  "0af7651916cd43dd8448eb211c80319c",
		"authorization": "Bearer secret",
		"cookie":        "a=b",
	}
	for k, v := range never {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/grpc")
	fields, _, err := requestFields(req, false)
	if err != nil {
		t.Fatal(err)
	}
	hw := h2frame.NewHeaderWriter()
	var out bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	hw.Write(fr, 1, fields, true, 16384)
	rd := http2.NewFramer(nil, &out)
	f, err := rd.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	block := f.(*http2.HeadersFrame).HeaderBlockFragment()
	dec := hpack.NewDecoder(4096, nil)
	got, err := dec.DecodeFull(block)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, hf := range got {
		_, want := never[hf.Name]
		if hf.Sensitive != want {
			t.Errorf("%s: never indexed %v, want %v", hf.Name, hf.Sensitive, want)
		}
		if want {
			seen++
		}
	}
	if seen != len(never) {
		t.Errorf("%d never-indexed fields decoded, want %d", seen, len(never))
	}
}
