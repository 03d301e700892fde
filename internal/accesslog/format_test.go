package accesslog

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// sampleEntry is the Envoy documentation's example request, with every
// field set.
func sampleEntry() *Entry {
	return &Entry{
		Start:     time.Date(2016, 4, 15, 20, 17, 0, 310_123_456, time.UTC),
		Method:    "POST",
		Path:      "/api/v1/locations?limit=10",
		Authority: "locations",
		Scheme:    "http",
		Protocol:  "HTTP/2",

		UpstreamProtocol: "HTTP/1.1",
		Request: HTTPHeader{
			"X-Forwarded-For": {"10.0.35.28"},
			"User-Agent":      {"nsq2http"},
			"X-Request-Id":    {"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2"},
			"X-Long":          {"abcdefghij"},
			"X-Multi":         {"first", "second"},
			"X-Empty":         {""},
		},
		Response: HTTPHeader{
			"X-Envoy-Upstream-Service-Time": {"100"},
			"Content-Type":                  {"application/json"},
		},
		Trailers:                       HTTPHeader{"Grpc-Status": {"5"}},
		ResponseCode:                   204,
		ResponseCodeDetails:            "via_upstream",
		BytesReceived:                  154,
		BytesSent:                      0,
		Duration:                       226*time.Millisecond + 900*time.Microsecond,
		RequestDuration:                3 * time.Millisecond,
		RequestTxDuration:              4*time.Millisecond + 999*time.Microsecond,
		ResponseDuration:               120 * time.Millisecond,
		ResponseTxDuration:             106 * time.Millisecond,
		UpstreamHost:                   "10.0.2.1:80",
		UpstreamCluster:                "cds_egress_demo_locations",
		UpstreamLocal:                  netip.MustParseAddrPort("10.0.2.5:40000"),
		UpstreamTransportFailureReason: "TLS error: 268435581:SSL routines",
		AttemptCount:                   1,
		DownstreamRemote:               netip.MustParseAddrPort("10.0.35.28:51000"),
		DownstreamLocal:                netip.MustParseAddrPort("[fd00::5]:15001"),
		DownstreamDirectRemote:         netip.MustParseAddrPort("127.0.0.1:51001"),
		RequestedServerName:            "locations.demo.local",
		RouteName:                      "route-1",
		ConnectionID:                   42,
		DownstreamTLSVersion:           "TLSv1.3",
		DownstreamPeerURISAN:           "spiffe://demo/virtualNode/client",
		TraceID:                        [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:                         [8]byte{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	}
}

func render(t *testing.T, format string, e *Entry) string {
	t.Helper()
	f, err := Parse(format)
	if err != nil {
		t.Fatalf("Parse(%q): %v", format, err)
	}
	return string(f.Append(nil, e))
}

// TestOperators has one case per command operator: what it prints for
// the sample entry and for an empty one.
func TestOperators(t *testing.T) {
	t.Parallel()
	host := hostname()
	if host == "" {
		host = "-"
	}
	tests := []struct {
		format    string
		want      string
		wantEmpty string
	}{
		{"%START_TIME%", "2016-04-15T20:17:00.310Z", "-"},
		{"%REQ(:METHOD)%", "POST", "-"},
		{"%REQ(:PATH)%", "/api/v1/locations?limit=10", "-"},
		{"%REQ(:AUTHORITY)%", "locations", "-"},
		{"%REQ(:SCHEME)%", "http", "-"},
		{"%REQ(USER-AGENT)%", "nsq2http", "-"},
		{"%REQ(user-agent)%", "nsq2http", "-"},
		{"%REQ(X-MULTI)%", "first", "-"},
		{"%REQ(X-EMPTY)%", "", "-"},
		{"%REQ_WITHOUT_QUERY(:PATH)%", "/api/v1/locations", "-"},
		{"%RESP(CONTENT-TYPE)%", "application/json", "-"},
		{"%RESP(:STATUS)%", "204", "-"},
		{"%TRAILER(GRPC-STATUS)%", "5", "-"},
		{"%RESPONSE_CODE%", "204", "0"},
		{"%RESPONSE_CODE_DETAILS%", "via_upstream", "-"},
		{"%RESPONSE_FLAGS%", "-", "-"},
		{"%BYTES_RECEIVED%", "154", "0"},
		{"%BYTES_SENT%", "0", "0"},
		{"%DURATION%", "226", "0"},
		{"%REQUEST_DURATION%", "3", "-"},
		{"%REQUEST_TX_DURATION%", "4", "-"},
		{"%RESPONSE_DURATION%", "120", "-"},
		{"%RESPONSE_TX_DURATION%", "106", "-"},
		{"%UPSTREAM_HOST%", "10.0.2.1:80", "-"},
		{"%UPSTREAM_REMOTE_ADDRESS%", "10.0.2.1:80", "-"},
		{"%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.2.1", "-"},
		{"%UPSTREAM_REMOTE_PORT%", "80", "-"},
		{"%UPSTREAM_CLUSTER%", "cds_egress_demo_locations", "-"},
		{"%UPSTREAM_LOCAL_ADDRESS%", "10.0.2.5:40000", "-"},
		{"%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "10.0.2.5", "-"},
		{"%UPSTREAM_LOCAL_PORT%", "40000", "-"},
		{"%UPSTREAM_TRANSPORT_FAILURE_REASON%", "TLS_error:_268435581:SSL_routines", "-"},
		{"%DOWNSTREAM_REMOTE_ADDRESS%", "10.0.35.28:51000", "-"},
		{"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.35.28", "-"},
		{"%DOWNSTREAM_REMOTE_PORT%", "51000", "-"},
		{"%DOWNSTREAM_LOCAL_ADDRESS%", "[fd00::5]:15001", "-"},
		{"%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "fd00::5", "-"},
		{"%DOWNSTREAM_LOCAL_PORT%", "15001", "-"},
		{"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%", "127.0.0.1:51001", "-"},
		{"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%", "127.0.0.1", "-"},
		{"%DOWNSTREAM_DIRECT_REMOTE_PORT%", "51001", "-"},
		{"%PROTOCOL%", "HTTP/2", "-"},
		{"%UPSTREAM_PROTOCOL%", "HTTP/1.1", "-"},
		{"%REQUESTED_SERVER_NAME%", "locations.demo.local", "-"},
		{"%ROUTE_NAME%", "route-1", "-"},
		{"%HOSTNAME%", host, host},
		{"%GRPC_STATUS%", "NotFound", "-"},
		{"%GRPC_STATUS(CAMEL_STRING)%", "NotFound", "-"},
		{"%GRPC_STATUS(SNAKE_STRING)%", "NOT_FOUND", "-"},
		{"%GRPC_STATUS(NUMBER)%", "5", "-"},
		{"%GRPC_STATUS_NUMBER%", "5", "-"},
		{"%CONNECTION_ID%", "42", "0"},
		{"%UPSTREAM_REQUEST_ATTEMPT_COUNT%", "1", "0"},
		{"%DOWNSTREAM_TLS_VERSION%", "TLSv1.3", "-"},
		{"%DOWNSTREAM_PEER_URI_SAN%", "spiffe://demo/virtualNode/client", "-"},
		{"%TRACE_ID%", "4bf92f3577b34da6a3ce929d0e0e4736", "-"},
		{"%SPAN_ID%", "00f067aa0ba902b7", "-"},
		{"100%% done", "100% done", "100% done"},
		{"", "", ""},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		if got := render(t, tt.format, sampleEntry()); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.format, got, tt.want)
		}
		if got := render(t, tt.format, &Entry{}); got != tt.wantEmpty {
			t.Errorf("%q on an empty entry: got %q, want %q", tt.format, got, tt.wantEmpty)
		}
		if m := regexp.MustCompile(`^%([A-Z_]+)`).FindStringSubmatch(tt.format); m != nil {
			seen[m[1]] = true
		}
	}
	for name := range operators {
		if !seen[name] {
			t.Errorf("operator %s has no case", name)
		}
	}
}

func TestDefaultFormat(t *testing.T) {
	t.Parallel()
	want := `[2016-04-15T20:17:00.310Z] "POST /api/v1/locations?limit=10 HTTP/2" 204 - 154 0 226 100 ` +
		`"10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "10.0.2.1:80"` + "\n"
	if got := string(Default().Append(nil, sampleEntry())); got != want {
		t.Errorf("default line:\n got %q\nwant %q", got, want)
	}

	// A rewritten request logs its original path, as Envoy does.
	e := sampleEntry()
	e.Request.(HTTPHeader)["X-Envoy-Original-Path"] = []string{"/locations"}
	if got := string(Default().Append(nil, e)); !strings.Contains(got, `"POST /locations HTTP/2"`) {
		t.Errorf("rewritten request: %q", got)
	}

	wantEmpty := `[-] "- - -" 0 - 0 0 0 - "-" "-" "-" "-" "-"` + "\n"
	if got := string(Default().Append(nil, nil)); got != wantEmpty {
		t.Errorf("empty entry:\n got %q\nwant %q", got, wantEmpty)
	}
	if Default().String() != DefaultFormat || Default().IsJSON() {
		t.Errorf("Default() = %q", Default())
	}
}

func TestTruncationAndAlternatives(t *testing.T) {
	t.Parallel()
	tests := []struct{ format, want string }{
		{"%REQ(X-LONG):3%", "abc"},
		{"%REQ(X-LONG):0%", ""},
		{"%REQ(X-LONG):10%", "abcdefghij"},
		{"%REQ(X-LONG):99%", "abcdefghij"},
		{"%REQ(X-NONE):3%", "-"},
		{"%REQ(X-NONE?USER-AGENT)%", "nsq2http"},
		{"%REQ(USER-AGENT?X-LONG)%", "nsq2http"},
		{"%REQ(X-NONE?X-LONG):4%", "abcd"},
		{"%REQ(X-NONE?X-ALSO-NONE)%", "-"},
		{"%REQ(X-NONE?)%", "-"},
		{"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "/api/v1/locations?limit=10"},
		{"%REQ_WITHOUT_QUERY(X-NONE?:PATH):8%", "/api/v1/"},
		{"%RESP(X-NONE?CONTENT-TYPE):11%", "application"},
		{"%TRAILER(X-NONE?GRPC-STATUS)%", "5"},
		{"%START_TIME()%", "2016-04-15T20:17:00.310Z"},
		{"%PROTOCOL()%", "HTTP/2"}, // empty parameters are no parameters, as in Envoy
	}
	for _, tt := range tests {
		if got := render(t, tt.format, sampleEntry()); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.format, got, tt.want)
		}
	}
}

func TestStartTimeFormats(t *testing.T) {
	t.Parallel()
	e := &Entry{Start: time.Date(2016, 4, 5, 8, 7, 6, 9_876_543, time.FixedZone("X", 3600))} // 07:07:06 UTC
	tests := []struct{ layout, want string }{
		{"%Y/%m/%dT%H:%M:%S%z %s", "2016/04/05T07:07:06+0000 1459840026"},
		{"%s.%3f", "1459840026.009"},
		{"%s.%6f", "1459840026.009876"},
		{"%s.%9f", "1459840026.009876543"},
		{"%f", "009876543"},
		{"%1f|%2f", "0|00"},
		{"%F %T", "2016-04-05 07:07:06"},
		{"%D %R", "04/05/16 07:07"},
		{"%y %C %j", "16 20 096"},
		{"%a %A %b %B %h", "Tue Tuesday Apr April Apr"},
		{"%e|%k|%I|%l|%p", " 5| 7|07| 7|AM"},
		{"%u %w", "2 2"},
		{"%H:%M:%E3S", "07:07:06.009"},
		{"%E6S", "06.009876"},
		{"%E*S", "06.009876543"},
		{"%Ez %E*z %Z", "+00:00 +00:00:00 UTC"},
		{"%E4Y", "2016"},
		{"%c", "Tue Apr  5 07:07:06 2016"},
		{"%%Y %n%t", "%Y \n\t"},
		{"%Q %E %0f trailing %", "%Q %E %0f trailing %"},
		{"plain", "plain"},
	}
	for _, tt := range tests {
		if got := render(t, "%START_TIME("+tt.layout+")%", e); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.layout, got, tt.want)
		}
	}
	// A whole second has no fraction under %E*S; noon is PM and 12.
	e.Start = time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC)
	if got := render(t, "%START_TIME(%E*S %I %p %u)%", e); got != "00 12 PM 3" {
		t.Errorf("whole second: %q", got)
	}
	e.Start = time.Date(2020, 1, 5, 0, 0, 0, 0, time.UTC) // a Sunday, at midnight
	if got := render(t, "%START_TIME(%u %w %I %l)%", e); got != "7 0 12 12" {
		t.Errorf("Sunday midnight: %q", got)
	}
}

func TestResponseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flags ResponseFlags
		want  string
	}{
		{0, "-"},
		{NoHealthyUpstream, "UH"},
		{UpstreamRetryLimitExceeded | UpstreamConnectionFailure, "UF,URX"},
		{DownstreamConnectionTermination | UpstreamRequestTimeout | FailedLocalHealthCheck, "LH,UT,DC"},
		{UnconditionalDropOverload | NoRouteFound, "NR,UDO"},
		{1 << 31, "-"}, // not a flag Envoy knows
	}
	for _, tt := range tests {
		e := &Entry{Flags: tt.flags}
		if got := render(t, "%RESPONSE_FLAGS%", e); got != tt.want {
			t.Errorf("%b: %%RESPONSE_FLAGS%% = %q, want %q", tt.flags, got, tt.want)
		}
		if tt.flags&(1<<31) == 0 && tt.flags.String() != tt.want {
			t.Errorf("%b: String() = %q, want %q", tt.flags, tt.flags.String(), tt.want)
		}
	}
	for i, code := range flagCodes {
		f, ok := ParseResponseFlag(code)
		if !ok || f != 1<<i || f.String() != code {
			t.Errorf("ParseResponseFlag(%q) = %v, %v", code, f, ok)
		}
	}
	if _, ok := ParseResponseFlag("XX"); ok {
		t.Error("ParseResponseFlag(XX) succeeded")
	}
	if f := UpstreamOverflow | RateLimited; !f.Has(RateLimited) || f.Has(RateLimited|NoRouteFound) {
		t.Errorf("Has is wrong for %s", f)
	}
}

func TestGRPCStatusSources(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    Entry
		want string
	}{
		{"trailer wins", Entry{Trailers: HTTPHeader{"Grpc-Status": {"0"}}, Response: HTTPHeader{"Grpc-Status": {"3"}}, ResponseCode: 200}, "OK"},
		{"trailers-only response", Entry{Response: HTTPHeader{"Grpc-Status": {"14"}}, ResponseCode: 200}, "Unavailable"},
		{"unparsable status falls through", Entry{Trailers: HTTPHeader{"Grpc-Status": {"x"}}, ResponseCode: 503}, "Unavailable"},
		{"beyond the known codes", Entry{Trailers: HTTPHeader{"Grpc-Status": {"42"}}}, "42"},
		{"from HTTP 400", Entry{ResponseCode: 400}, "Internal"},
		{"from HTTP 401", Entry{ResponseCode: 401}, "Unauthenticated"},
		{"from HTTP 403", Entry{ResponseCode: 403}, "PermissionDenied"},
		{"from HTTP 404", Entry{ResponseCode: 404}, "Unimplemented"},
		{"from HTTP 429", Entry{ResponseCode: 429}, "Unavailable"},
		{"from HTTP 200", Entry{ResponseCode: 200}, "Unknown"},
		{"no response", Entry{}, "-"},
	}
	for _, tt := range tests {
		if got := render(t, "%GRPC_STATUS%", &tt.e); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestJSONFormat(t *testing.T) {
	t.Parallel()
	f, err := ParseJSON([]KV{
		{"status", "%RESPONSE_CODE%"},
		{"duration", "%DURATION%"},
		{"bytes", "%BYTES_SENT%"},
		{"attempts", "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"},
		{"grpc", "%GRPC_STATUS(NUMBER)%"},
		{"grpc_name", "%GRPC_STATUS%"},
		{"flags", "%RESPONSE_FLAGS%"},
		{"path", "%REQ(:PATH)%"},
		{"agent", "%REQ(USER-AGENT):3%"},
		{"missing", "%REQ(X-NONE)%"},
		{"resp_tx", "%RESPONSE_TX_DURATION%"},
		{"mixed", "%RESPONSE_CODE% in %DURATION%ms by %REQ(X-NONE)%"},
		{"plain", `a "plain" string`},
		{"empty", ""},
		{"start", "%START_TIME%"},
		{"quote", "%REQ(X-QUOTE)%"},
		{"quote_mixed", "<%REQ(X-QUOTE)%>"},
		{"bad_utf8", "%REQ(X-BAD)%"},
		{"dup", "first"},
		{"dup", "second"},
		{"ké\"y", "v"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := sampleEntry()
	e.ResponseTxDuration = 0
	e.Request.(HTTPHeader)["X-Quote"] = []string{"a\"b\\c\nd\x01"}
	e.Request.(HTTPHeader)["X-Bad"] = []string{"ok\xffok"}
	line := f.Append(nil, e)
	if !strings.HasSuffix(string(line), "}\n") || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("line is not one JSON object and a newline: %q", line)
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	want := map[string]any{
		"status":      float64(204),
		"duration":    float64(226),
		"bytes":       float64(0),
		"attempts":    float64(1),
		"grpc":        float64(5),
		"grpc_name":   "NotFound",
		"flags":       "-",
		"path":        "/api/v1/locations?limit=10",
		"agent":       "nsq",
		"missing":     nil,
		"resp_tx":     nil,
		"mixed":       "204 in 226ms by -",
		"plain":       `a "plain" string`,
		"empty":       "",
		"start":       "2016-04-15T20:17:00.310Z",
		"quote":       "a\"b\\c\nd\x01",
		"quote_mixed": "<a\"b\\c\nd\x01>",
		"bad_utf8":    "ok\ufffdok",
		"dup":         "second",
		"ké\"y":       "v",
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s: got %#v (present %v), want %#v", k, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d keys, want %d: %s", len(got), len(want), line)
	}
	// Keys come out sorted, as Envoy writes them.
	keys := regexp.MustCompile(`[{,]"((?:[^"\\]|\\.)*)":`).FindAllStringSubmatch(string(line), -1)
	var order []string
	for _, k := range keys {
		order = append(order, k[1])
	}
	if !slices.IsSorted(order) {
		t.Errorf("keys not sorted: %v", order)
	}
	if !f.IsJSON() {
		t.Error("IsJSON() = false")
	}

	// The exact bytes of a small format, empty entry included.
	small, err := ParseJSON([]KV{{"code", "%RESPONSE_CODE%"}, {"path", "%REQ(:PATH)%"}, {"d", "%RESPONSE_DURATION%"}, {"m", "x%REQ(:PATH)%"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(small.Append(nil, sampleEntry())), `{"code":204,"d":120,"m":"x/api/v1/locations?limit=10","path":"/api/v1/locations?limit=10"}`+"\n"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got, want := string(small.Append(nil, &Entry{})), `{"code":0,"d":null,"m":"x-","path":null}`+"\n"; got != want {
		t.Errorf("empty entry: got  %s\nwant %s", got, want)
	}
	if got, want := small.String(), `{"code":"%RESPONSE_CODE%","d":"%RESPONSE_DURATION%","m":"x%REQ(:PATH)%","path":"%REQ(:PATH)%"}`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	// Trace and span ids are strings, null without a trace.
	ids, err := ParseJSON([]KV{{"trace_id", "%TRACE_ID%"}, {"span_id", "%SPAN_ID%"}, {"tp", "00-%TRACE_ID%-%SPAN_ID%-01"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(ids.Append(nil, sampleEntry())), `{"span_id":"00f067aa0ba902b7","tp":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`+"\n"; got != want {
		t.Errorf("trace ids: got  %s\nwant %s", got, want)
	}
	if got, want := string(ids.Append(nil, &Entry{})), `{"span_id":null,"tp":"00-----01","trace_id":null}`+"\n"; got != want {
		t.Errorf("no trace: got  %s\nwant %s", got, want)
	}
	none, err := ParseJSON(nil)
	if err != nil || string(none.Append(nil, sampleEntry())) != "{}\n" {
		t.Errorf("no keys: %v %q", err, none.Append(nil, nil))
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format string
		want   string
		is     error
	}{
		{"[%FOO%]", "access log format: position 1: %FOO%: unknown command operator", ErrUnknownOperator},
		{"%START_TIME% %REQ(A)% %UNKNOWN_THING(x):3%", "access log format: position 22: %UNKNOWN_THING(x):3%: unknown command operator", ErrUnknownOperator},
		{"100%", "access log format: position 3: no valid command operator here (write %% for a literal %)", ErrSyntax},
		{"% PROTOCOL%", "access log format: position 0: no valid command operator here (write %% for a literal %)", ErrSyntax},
		{"%protocol%", "access log format: position 0: no valid command operator here (write %% for a literal %)", ErrSyntax},
		{"%PROTOCOL", "access log format: position 0: no valid command operator here (write %% for a literal %)", ErrSyntax},
		{"%REQ(A%", "access log format: position 0: no valid command operator here: '(' without ')' (write %% for a literal %)", ErrSyntax},
		{"%REQ(A):%", "access log format: position 0: no valid command operator here (write %% for a literal %)", ErrSyntax},
		{"%REQ(A)x%", "access log format: position 0: no valid command operator here (write %% for a literal %)", ErrSyntax},
		{"%PROTOCOL(x)%", "access log format: position 0: %PROTOCOL(x)%: PROTOCOL takes no parameters or length", ErrSyntax},
		{"%DURATION:3%", "access log format: position 0: %DURATION:3%: DURATION takes no parameters or length", ErrSyntax},
		{"%REQ%", "access log format: position 0: %REQ%: REQ needs a header name: REQ(X-HEADER)", ErrSyntax},
		{"%RESP()%", "access log format: position 0: %RESP()%: RESP needs a header name: RESP(X-HEADER)", ErrSyntax},
		{"%REQ(A?B?C)%", "access log format: position 0: %REQ(A?B?C)%: more than one alternative header in A?B?C", ErrSyntax},
		{"%REQ(?B)%", `access log format: position 0: %REQ(?B)%: invalid header name ""`, ErrSyntax},
		{"%REQ(A B)%", `access log format: position 0: %REQ(A B)%: invalid header name "A B"`, ErrSyntax},
		{"%TRAILER(A?\n)%", "access log format: position 0: %TRAILER(A?\n)%: invalid header name \"\\n\"", ErrSyntax},
		{"%START_TIME:10%", "access log format: position 0: %START_TIME:10%: START_TIME takes no length", ErrSyntax},
		{"%GRPC_STATUS(LOUD)%", "access log format: position 0: %GRPC_STATUS(LOUD)%: GRPC_STATUS takes CAMEL_STRING, SNAKE_STRING or NUMBER", ErrSyntax},
		{"%REQ(A):99999999999%", "access log format: position 0: %REQ(A):99999999999%: length 99999999999 is too large", ErrSyntax},
	}
	for _, tt := range tests {
		_, err := Parse(tt.format)
		if err == nil {
			t.Errorf("%q: no error", tt.format)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("%q:\n got %s\nwant %s", tt.format, err, tt.want)
		}
		if !errors.Is(err, tt.is) {
			t.Errorf("%q: %v is not %v", tt.format, err, tt.is)
		}
	}

	_, err := ParseJSON([]KV{{"ok", "%PROTOCOL%"}, {"bad", "x %NOPE%"}})
	const want = `access log format: key "bad": position 2: %NOPE%: unknown command operator`
	var pe *ParseError
	if err == nil || err.Error() != want || !errors.As(err, &pe) || pe.Key != "bad" || pe.Pos != 2 || pe.Operator != "%NOPE%" {
		t.Errorf("ParseJSON error:\n got %v\nwant %s", err, want)
	}
}

func TestFromConfig(t *testing.T) {
	t.Parallel()
	f, err := FromConfig("", nil)
	if err != nil || f != Default() {
		t.Errorf("no format: %v, %v", f, err)
	}
	f, err = FromConfig("%RESPONSE_CODE%", nil)
	if err != nil || string(f.Append(nil, sampleEntry())) != "204\n" {
		t.Errorf("text without newline: %v %q", err, f.Append(nil, sampleEntry()))
	}
	f, err = FromConfig("%RESPONSE_CODE%\n", nil)
	if err != nil || string(f.Append(nil, sampleEntry())) != "204\n" {
		t.Errorf("text with newline: %v", err)
	}
	f, err = FromConfig("ignored", map[string]string{"b": "%BYTES_SENT%", "a": "%PROTOCOL%"})
	if err != nil || string(f.Append(nil, sampleEntry())) != `{"a":"HTTP/2","b":0}`+"\n" {
		t.Errorf("json: %v %q", err, f.Append(nil, sampleEntry()))
	}
	if _, err := FromConfig("%BAD%", nil); !errors.Is(err, ErrUnknownOperator) {
		t.Errorf("bad text: %v", err)
	}
}

func TestHelpers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		major, minor int
		want         string
	}{{1, 0, "HTTP/1.0"}, {1, 1, "HTTP/1.1"}, {2, 0, "HTTP/2"}, {3, 0, "HTTP/3"}, {0, 9, ""}} {
		if got := ProtocolName(tt.major, tt.minor); got != tt.want {
			t.Errorf("ProtocolName(%d, %d) = %q", tt.major, tt.minor, got)
		}
	}
	for v, want := range map[uint16]string{0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3", 0x0300: ""} {
		if got := TLSVersionName(v); got != want {
			t.Errorf("TLSVersionName(%#x) = %q", v, got)
		}
	}
	for hp, want := range map[string][2]string{
		"10.0.0.1:80":      {"10.0.0.1", "80"},
		"[fd00::1]:8080":   {"fd00::1", "8080"},
		"[fd00::1]":        {"fd00::1", ""},
		"fd00::1":          {"fd00::1", ""},
		"svc.local:443":    {"svc.local", "443"},
		"svc.local":        {"svc.local", ""},
		"[broken":          {"[broken", ""},
		"unix:/var/run/x":  {"unix", "/var/run/x"},
		"host:":            {"host", ""},
		"10.0.0.1:80:junk": {"10.0.0.1:80:junk", ""},
	} {
		h, p := splitHostPort(hp)
		if h != want[0] || p != want[1] {
			t.Errorf("splitHostPort(%q) = %q, %q", hp, h, p)
		}
	}
	// UPSTREAM_HOST without a port prints "-" for the port.
	if got := render(t, "%UPSTREAM_REMOTE_PORT% %UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", &Entry{UpstreamHost: "svc.local"}); got != "- svc.local" {
		t.Errorf("host without port: %q", got)
	}
	// The direct remote address falls back to the remote address.
	e := &Entry{DownstreamRemote: netip.MustParseAddrPort("10.1.1.1:5")}
	if got := render(t, "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%", e); got != "10.1.1.1:5" {
		t.Errorf("direct remote fallback: %q", got)
	}
}

// TestDocListsEveryOperator keeps docs/accesslog.md's operator table and
// the parser in step.
func TestDocListsEveryOperator(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/accesslog.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "## Command operators")
	section, _, _ = strings.Cut(section, "\n#")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `%([A-Z0-9_]+)").FindAllStringSubmatch(section, -1) {
		documented[m[1]] = true
	}
	for name := range operators {
		if !documented[name] {
			t.Errorf("docs/accesslog.md does not list %%%s%%", name)
		}
	}
	for name := range documented {
		if _, ok := operators[name]; !ok {
			t.Errorf("docs/accesslog.md lists %%%s%%, which Parse rejects", name)
		}
	}
}
