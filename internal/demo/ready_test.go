package demo

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestEveryClusterHasEndpoints(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:1/clusters?format=json")
	resp := func(code int) *http.Response {
		return &http.Response{StatusCode: code, Status: http.StatusText(code), Request: &http.Request{URL: u}}
	}
	for _, tc := range []struct {
		name string
		code int
		body string
		want string // "" accepts; else a part of the error
	}{
		{"all have endpoints", 200, `{"cluster_statuses":[{"name":"a","host_statuses":[{}]},{"name":"b","host_statuses":[{},{}]}]}`, ""},
		{"canary still empty", 200, `{"cluster_statuses":[{"name":"a","host_statuses":[{}]},{"name":"v2"}]}`, "cluster v2 has no endpoints"},
		{"no config yet", 200, `{}`, "no clusters yet"},
		{"not json", 200, `a::b`, "invalid character"},
		{"admin error", 503, ``, "Service Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := everyClusterHasEndpoints(resp(tc.code), []byte(tc.body))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
