package apps

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

func TestGreeterCallsBothBackends(t *testing.T) {
	gh, _ := Handler(Config{Role: "greeting", Instance: "greeting-v1-1"})
	nh, _ := Handler(Config{Role: "name", Instance: "name-1", Words: []string{"Courtney"}})
	greeting := httptest.NewServer(gh)
	defer greeting.Close()
	name := httptest.NewServer(nh)
	defer name.Close()
	h, err := Handler(Config{Role: "greeter", Instance: "greeter-1", GreetingURL: greeting.URL, NameURL: name.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := regexp.MustCompile(`^From greeter-1: Hi \(greeting-v1-1\) Courtney \(name-1\)\n$`)
	if resp.StatusCode != 200 || !want.Match(body) {
		t.Fatalf("got %s %q", resp.Status, body)
	}
}

func TestGreeterReportsBackendFailure(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	h, _ := Handler(Config{Role: "greeter", Instance: "greeter-1", GreetingURL: broken.URL, NameURL: broken.URL})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusBadGateway || !regexp.MustCompile(`503 Service Unavailable no healthy upstream`).MatchString(rec.Body.String()) {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
}

func TestUnknownRole(t *testing.T) {
	if _, err := Handler(Config{Role: "colour"}); err == nil {
		t.Fatal("unknown role accepted")
	}
}
