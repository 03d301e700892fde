package apiclient

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/tapwire"
)

// tapClient has no overall timeout: a tap streams for its duration, which
// the control plane bounds; the caller's context ends it too. It keeps the
// client's TLS settings.
func (c *Client) tapClient() *http.Client {
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok || tr == nil {
		tr = http.DefaultTransport.(*http.Transport)
	}
	tr = tr.Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: tr}
}

// Tap opens a live tap (GET /v1/tap with query q: mesh, kind, name and
// the tap parameters) and calls fn for every line of the stream, events
// and proxy errors alike, until the tap ends, ctx ends or fn fails.
func (c *Client) Tap(ctx context.Context, q url.Values, fn func(*tapwire.Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/tap?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("GET /v1/tap: %w", err)
	}
	req.Header.Set("Accept", "application/x-ndjson")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.tapClient().Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		apiErr := &restv1.Error{Status: resp.StatusCode}
		if json.Unmarshal(data, apiErr) != nil || apiErr.Message == "" {
			apiErr.Code = http.StatusText(resp.StatusCode)
			apiErr.Message = strings.TrimSpace(string(data))
		}
		return apiErr
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		ev := &tapwire.Event{}
		if err := json.Unmarshal(sc.Bytes(), ev); err != nil {
			return fmt.Errorf("GET /v1/tap: decode event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("GET /v1/tap: read events: %w", err)
	}
	return nil
}
