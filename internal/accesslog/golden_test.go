package accesslog

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGolden renders the formats of docs/accesslog.md for the sample
// entry and an empty one into testdata/render.golden, so a change in
// output shows up as a reviewable diff. Regenerate with
// go test ./internal/accesslog -run TestGolden -update.
func TestGolden(t *testing.T) {
	t.Parallel()
	docJSON, err := ParseJSON([]KV{
		{"status", "%RESPONSE_CODE%"},
		{"duration", "%DURATION%"},
		{"path", "%REQ(:PATH)%"},
		{"route", "%ROUTE_NAME% via %UPSTREAM_HOST%"},
		{"service", "orders"},
	})
	if err != nil {
		t.Fatal(err)
	}
	formats := []struct {
		name string
		f    *Format
	}{
		{"default", Default()},
		{"text example", mustParse(t, "[%START_TIME%] %REQ(:METHOD)% %RESPONSE_CODE%\n")},
		{"start time examples", mustParse(t, "%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)% | %START_TIME(%s.%3f)% | %START_TIME(%s.%6f)% | %START_TIME(%s.%9f)%\n")},
		{"tcp", mustParse(t, "[%START_TIME%] %DOWNSTREAM_REMOTE_ADDRESS% -> %DOWNSTREAM_LOCAL_ADDRESS% via %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESPONSE_FLAGS%\n")},
		{"json example", docJSON},
	}
	var out bytes.Buffer
	for _, fm := range formats {
		fmt.Fprintf(&out, "## %s\n%s\n", fm.name, fm.f)
		fmt.Fprintf(&out, "-- sample\n%s", fm.f.Append(nil, sampleEntry()))
		flagged := sampleEntry()
		flagged.Flags = UpstreamConnectionFailure | UpstreamRetryLimitExceeded
		flagged.ResponseCode = 503
		fmt.Fprintf(&out, "-- flagged\n%s", fm.f.Append(nil, flagged))
		fmt.Fprintf(&out, "-- empty\n%s\n", fm.f.Append(nil, &Entry{}))
	}
	golden := filepath.Join("testdata", "render.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("output differs from %s (run with -update and review the diff):\n%s", golden, out.Bytes())
	}
}

func mustParse(t *testing.T, s string) *Format {
	t.Helper()
	f, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
