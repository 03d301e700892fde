package tap

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// resetBudget refills the sampling budget so tests do not depend on each
// other's events.
func resetBudget() {
	hub.rateMu.Lock()
	hub.last = time.Time{}
	hub.rateMu.Unlock()
}

func TestLoadIsNilWhileNobodyTaps(t *testing.T) {
	if Load() != nil {
		t.Fatal("Load() != nil before any tap")
	}
	a, err := Open(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if Load() == nil {
		t.Fatal("Load() == nil with two taps open")
	}
	a.Close()
	if Load() == nil {
		t.Fatal("Load() == nil with one tap open")
	}
	b.Close()
	b.Close() // twice is harmless
	if Load() != nil {
		t.Fatal("Load() != nil after the last tap closed")
	}
}

// The request path's check costs no allocation while nobody taps.
func TestIdleCheckAllocatesNothing(t *testing.T) {
	published := 0
	n := testing.AllocsPerRun(1000, func() {
		if ts := Load(); ts != nil {
			published++
		}
	})
	if n != 0 || published != 0 {
		t.Errorf("idle tap check: %v allocations, %d published", n, published)
	}
}

func TestAtMostMaxTapsOpen(t *testing.T) {
	var taps []*Tap
	defer func() {
		for _, tp := range taps {
			tp.Close()
		}
	}()
	for range MaxTaps {
		tp, err := Open(Filter{})
		if err != nil {
			t.Fatal(err)
		}
		taps = append(taps, tp)
	}
	if _, err := Open(Filter{}); err != ErrTooManyTaps {
		t.Fatalf("tap %d: err %v, want ErrTooManyTaps", MaxTaps+1, err)
	}
	taps[0].Close()
	tp, err := Open(Filter{})
	if err != nil {
		t.Fatalf("after one closed: %v", err)
	}
	taps[0] = tp
}

// The proxy samples at most RatePerSecond events per second for all its
// taps: a burst gets RatePerSecond, the rest are not tapped.
func TestSamplingBudget(t *testing.T) {
	resetBudget()
	tp, err := Open(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	now := time.Now()
	got := 0
	for range 3 * RatePerSecond {
		if take(now) {
			got++
		}
	}
	if got != RatePerSecond {
		t.Errorf("a burst sampled %d events, want %d", got, RatePerSecond)
	}
	if take(now.Add(5 * time.Millisecond)) {
		t.Error("5 ms later: sampled, want none (half an event earned)")
	}
	if !take(now.Add(20 * time.Millisecond)) {
		t.Error("20 ms later: not sampled, want one (two events earned)")
	}
}

func TestPublishFiltersAndNeverBlocks(t *testing.T) {
	resetBudget()
	api, err := Open(Filter{PathPrefix: "/api", Method: "get"})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	ts := Load()
	if ts.Wants("GET", "a", "/other") || !ts.Wants("GET", "a", "/api/x") || ts.Wants("POST", "a", "/api/x") {
		t.Fatal("Wants does not follow the filter")
	}
	for range buffer + 10 {
		ts.Publish(Event{Method: "GET", Path: "/api/x", Status: 200}, nil)
		resetBudget()
	}
	ts.Publish(Event{Method: "GET", Path: "/other"}, nil)
	if len(api.C()) != buffer || api.Dropped() != 10 {
		t.Errorf("buffered %d dropped %d, want %d and 10", len(api.C()), api.Dropped(), buffer)
	}
}

func TestHeadersRedacted(t *testing.T) {
	h := http.Header{
		"Authorization":       {"Bearer s3cret"},
		"Cookie":              {"session=abc"},
		"Proxy-Authorization": {"Basic x"},
		"X-Api-Key":           {"k"},
		"X-Session-Token":     {"t"},
		"User-Agent":          {"curl/8"},
		"X-Request-Id":        {"42"},
		"X-Long":              {strings.Repeat("a", 1000)},
	}
	for _, tc := range []struct {
		name string
		show bool
		want map[string]string
	}{
		{"default", false, map[string]string{
			"authorization": Redacted, "cookie": Redacted, "proxy-authorization": Redacted, "x-api-key": Redacted,
			"x-session-token": Redacted, "user-agent": Redacted, "x-request-id": Redacted, "x-long": Redacted,
		}},
		{"show", true, map[string]string{
			"authorization": Redacted, "cookie": Redacted, "proxy-authorization": Redacted, "x-api-key": Redacted,
			"x-session-token": Redacted, "user-agent": "curl/8", "x-request-id": "42", "x-long": strings.Repeat("a", maxValue),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Headers(h, tc.show)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d headers, want %d: %v", len(got), len(tc.want), got)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestHeadersBounded(t *testing.T) {
	h := http.Header{}
	for i := range 2 * maxHeaders {
		h.Set("X-H"+strconv.Itoa(i), "v")
	}
	if got := Headers(h, true); len(got) != maxHeaders {
		t.Errorf("%d headers kept, want %d", len(got), maxHeaders)
	}
	if Headers(nil, true) != nil {
		t.Error("no headers: want nil")
	}
}
