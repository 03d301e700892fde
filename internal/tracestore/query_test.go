package tracestore

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	t.Parallel()
	now := time.UnixMicro(1_000_000_000_000)
	for _, tc := range []struct {
		name, query string
		check       func(t *testing.T, q Query, ids []traceID)
		err         string
	}{
		{name: "defaults", query: "service=s", check: func(t *testing.T, q Query, _ []traceID) {
			if q.Limit != DefaultLimit || !q.End.Equal(now) || !q.Start.Equal(now.Add(-DefaultLookback)) || len(q.Tags) != 0 {
				t.Fatalf("q = %+v", q)
			}
		}},
		{name: "everything", query: "service=s&operation=op&tag=a:b:c&tags=" + url.QueryEscape(`{"x":"y"}`) +
			"&start=10&end=20&minDuration=1ms&maxDuration=1.5s&limit=7", check: func(t *testing.T, q Query, _ []traceID) {
			if q.Operation != "op" || q.Tags["a"] != "b:c" || q.Tags["x"] != "y" || q.Start.UnixMicro() != 10 || q.End.UnixMicro() != 20 ||
				q.MinDuration != time.Millisecond || q.MaxDuration != 1500*time.Millisecond || q.Limit != 7 {
				t.Fatalf("q = %+v", q)
			}
		}},
		{name: "lookback", query: "service=s&lookback=2h", check: func(t *testing.T, q Query, _ []traceID) {
			if !q.Start.Equal(now.Add(-2 * time.Hour)) {
				t.Fatalf("start = %v", q.Start)
			}
		}},
		{name: "custom lookback uses start", query: "service=s&lookback=custom&start=5", check: func(t *testing.T, q Query, _ []traceID) {
			if q.Start.UnixMicro() != 5 {
				t.Fatalf("start = %v", q.Start)
			}
		}},
		{name: "limit capped", query: "service=s&limit=99999", check: func(t *testing.T, q Query, _ []traceID) {
			if q.Limit != MaxLimit {
				t.Fatalf("limit = %d", q.Limit)
			}
		}},
		{name: "trace ids need no service", query: "traceID=abc&traceID=00000000000000000000000000000abc", check: func(t *testing.T, _ Query, ids []traceID) {
			if len(ids) != 2 || ids[0] != ids[1] || ids[0].String() != "0000000000000abc" {
				t.Fatalf("ids = %v", ids)
			}
		}},
		{name: "no service", query: "operation=x", err: "parameter 'service' is required"},
		{name: "bad start", query: "service=s&start=yesterday", err: "param 'start'"},
		{name: "bad end", query: "service=s&end=-4", err: "param 'end'"},
		{name: "bad limit", query: "service=s&limit=ten", err: "param 'limit'"},
		{name: "bad min duration", query: "service=s&minDuration=5", err: "param 'minDuration'"},
		{name: "bad max duration", query: "service=s&maxDuration=x", err: "param 'maxDuration'"},
		{name: "max below min", query: "service=s&minDuration=2s&maxDuration=1s", err: "'maxDuration' should be greater than 'minDuration'"},
		{name: "bad lookback", query: "service=s&lookback=forever", err: "param 'lookback'"},
		{name: "bad tag", query: "service=s&tag=novalue", err: "malformed 'tag' parameter"},
		{name: "bad tags", query: "service=s&tags=[1]", err: "malformed 'tags' parameter"},
		{name: "bad trace id", query: "traceID=xyz", err: "cannot parse traceID"},
		{name: "long trace id", query: "traceID=" + strings.Repeat("a", 33), err: "cannot parse traceID"},
		{name: "too many tags", query: "service=s" + manyTags(51), err: "at most 50 tags"},
		{name: "too many trace ids", query: "traceID=1" + strings.Repeat("&traceID=1", 100), err: "at most 100 trace ids"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			q, ids, err := ParseQuery(v, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, q, ids)
		})
	}
}

func manyTags(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("&tag=k" + itoa(i) + ":v")
	}
	return b.String()
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"service=s&tag=a:b&tags=%7B%22x%22%3A%22y%22%7D&start=1&end=2&minDuration=1ms&maxDuration=2s&limit=3",
		"traceID=abc", "service=s&lookback=1h", "service=&limit=-1"} {
		f.Add(s)
	}
	now := time.UnixMicro(1_000_000_000_000)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, ids, err := ParseQuery(v, now)
		if err != nil {
			return
		}
		if len(ids) == 0 && q.Service == "" {
			t.Fatal("accepted a search with neither service nor trace id")
		}
		if q.Limit < 1 || q.Limit > MaxLimit {
			t.Fatalf("limit %d out of range", q.Limit)
		}
		if q.MinDuration < 0 || q.MaxDuration < 0 || (q.MaxDuration != 0 && q.MaxDuration < q.MinDuration) {
			t.Fatalf("durations %v..%v", q.MinDuration, q.MaxDuration)
		}
	})
}

func FuzzParseTraceID(f *testing.F) {
	f.Add("abc")
	f.Add("0123456789abcdef0123456789abcdef")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseTraceID(s)
		if err != nil {
			return
		}
		again, err := parseTraceID(id.String())
		if err != nil || again != id {
			t.Fatalf("%q -> %s does not read back: %v", s, id, err)
		}
	})
}
