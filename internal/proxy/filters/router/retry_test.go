package router

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/meshlens/meshlens/internal/proxy/codec/h2client"
	"github.com/meshlens/meshlens/internal/proxy/codec/stream"
	"github.com/meshlens/meshlens/internal/proxy/table"
)

// TestRetriableRefusedStream: an upstream's refused stream is told by its
// error's type (stream.ErrRefusedStream), wrapped or not, and retried
// under "refused-stream"; any other reset only under "reset".
func TestRetriableRefusedStream(t *testing.T) {
	t.Parallel()
	refused := &h2client.StreamError{Code: uint32(stream.ResetRefusedStream), Reason: "GOAWAY before the request was sent"}
	internal := &h2client.StreamError{Code: uint32(stream.ResetInternalError)}
	for _, tc := range []struct {
		name string
		on   table.RetryOn
		err  error
		want bool
	}{
		{"refused, refused-stream", table.RetryRefusedStream, refused, true},
		{"refused wrapped, refused-stream", table.RetryRefusedStream, fmt.Errorf("attempt: %w", refused), true},
		{"other reset, refused-stream", table.RetryRefusedStream, internal, false},
		{"other reset, reset", table.RetryReset, internal, true},
		{"refused, 5xx", table.Retry5xx, refused, true},
		{"refused, gateway-error", table.RetryGatewayError, refused, true},
		{"refused, reset", table.RetryReset, refused, true},
		{"refused, connect-failure", table.RetryConnectFailure, refused, false},
		{"plain error naming the code, refused-stream", table.RetryRefusedStream, errors.New("REFUSED_STREAM"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := &table.RetryPolicy{On: tc.on, NumRetries: 1}
			if got := retriable(pol, &tryResult{err: tc.err}, context.Background()); got != tc.want {
				t.Fatalf("retriable = %v, want %v", got, tc.want)
			}
		})
	}
}
