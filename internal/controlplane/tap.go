package controlplane

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
	restv1 "github.com/meshlens/meshlens/api/rest/v1"
	"github.com/meshlens/meshlens/internal/nodeid"
	"github.com/meshlens/meshlens/internal/tapwire"
)

// Live tap: GET /v1/tap opens a tap (GET /tap) on the admin endpoint of
// every proxy of one virtual node or gateway and merges their streams into
// one, as newline-delimited JSON or, for an EventSource, server-sent
// events. Nothing is tapped while nobody asks.

const (
	// maxAPITaps is the number of /v1/tap streams open at once.
	maxAPITaps = 8
	// maxTapProxies is the number of proxies one tap fans out to.
	maxTapProxies = 32
	// maxTapLine is the longest event line a proxy may send.
	maxTapLine = 256 << 10
)

// tapLimiter counts the open /v1/tap streams; its zero value is ready.
type tapLimiter struct {
	mu sync.Mutex
	n  int
}

func (l *tapLimiter) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= maxAPITaps {
		return false
	}
	l.n++
	return true
}

func (l *tapLimiter) release() {
	l.mu.Lock()
	l.n--
	l.mu.Unlock()
}

// tapClient reaches the proxies' admin endpoints: bounded dial and
// header waits, no overall timeout (a tap streams for its duration, and
// its context ends it).
var tapClient = &http.Client{Transport: &http.Transport{
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	ResponseHeaderTimeout: 5 * time.Second,
	DisableKeepAlives:     true,
}}

// tapTarget is one proxy's admin endpoint.
type tapTarget struct{ proxy, addr string }

// tapTargets finds the admin endpoints of the connected proxies of one
// virtual node or gateway.
func (s *Server) tapTargets(kind nodeid.Kind, mesh, name string) ([]tapTarget, error) {
	var out []tapTarget
	seen := map[string]bool{}
	connected := false
	for _, n := range s.xds.Nodes() {
		if n.Kind != string(kind) || n.Mesh != mesh || n.Name != name {
			continue
		}
		connected = true
		for _, st := range n.Streams {
			if st.AdminAddr == "" || seen[st.AdminAddr] {
				continue
			}
			seen[st.AdminAddr] = true
			out = append(out, tapTarget{proxy: n.ID, addr: st.AdminAddr})
		}
	}
	switch {
	case !connected:
		return nil, &restv1.Error{Status: http.StatusNotFound, Code: restv1.CodeNotFound,
			Message: fmt.Sprintf("tap: no proxy of %s %s/%s is connected", kind, mesh, name)}
	case len(out) == 0:
		return nil, &restv1.Error{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailableException",
			Message: fmt.Sprintf("tap: no connected proxy of %s %s/%s reports an admin address", kind, mesh, name)}
	case len(out) > maxTapProxies:
		out = out[:maxTapProxies]
	}
	return out, nil
}

// handleTap serves GET /v1/tap?mesh=&kind=&name= with the tap parameters
// of the proxies' /tap (path_prefix, method, authority, show_headers, max,
// duration).
func (s *Server) handleTap(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mesh, name := q.Get("mesh"), q.Get("name")
	bad := func(format string, args ...any) {
		writeError(w, &restv1.Error{Status: http.StatusBadRequest, Code: restv1.CodeBadRequest, Message: "tap: " + fmt.Sprintf(format, args...)})
	}
	if mesh == "" || name == "" {
		bad("mesh and name: are required")
		return
	}
	var kind nodeid.Kind
	switch k, err := v1alpha1.ParseKind(q.Get("kind")); {
	case q.Get("kind") == "":
		bad("kind: is required (virtualNode or virtualGateway)")
		return
	case err == nil && k == v1alpha1.KindVirtualNode:
		kind = nodeid.VirtualNode
	case err == nil && k == v1alpha1.KindVirtualGateway:
		kind = nodeid.VirtualGateway
	default:
		bad("kind %q: want virtualNode (vn) or virtualGateway (vg)", q.Get("kind"))
		return
	}
	params, err := tapwire.ParseParams(q)
	if err != nil {
		bad("%v", err)
		return
	}
	targets, err := s.tapTargets(kind, mesh, name)
	if err != nil {
		writeError(w, err)
		return
	}
	if !s.taps.acquire() {
		writeError(w, &restv1.Error{Status: http.StatusTooManyRequests, Code: "TooManyRequestsException",
			Message: fmt.Sprintf("tap: %d taps are open, the most the control plane allows", maxAPITaps)})
		return
	}
	defer s.taps.release()

	ctx, cancel := context.WithTimeout(r.Context(), params.Duration)
	defer cancel()
	events := make(chan *tapwire.Event, 64)
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.tapProxy(ctx, t, params, events)
		}()
	}
	go func() {
		wg.Wait()
		close(events)
	}()
	defer func() {
		cancel()
		for range events { // let the readers end
		}
	}()

	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	rc := http.NewResponseController(w)
	// The server's read and write timeouts would cut a long tap (an
	// expired read deadline cancels the request's context).
	end := time.Now().Add(params.Duration + 10*time.Second)
	_ = rc.SetReadDeadline(end)
	_ = rc.SetWriteDeadline(end)
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	sent := 0
	for ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			continue
		}
		if sse {
			_, err = fmt.Fprintf(w, "data: %s\n\n", b)
		} else {
			_, err = fmt.Fprintf(w, "%s\n", b)
		}
		if err != nil || rc.Flush() != nil {
			return
		}
		if ev.Error == "" {
			sent++
		}
		if params.Max > 0 && sent >= params.Max {
			break
		}
	}
	if sse {
		// Tell an EventSource the tap ended, so it does not reconnect.
		fmt.Fprint(w, "event: end\ndata: {}\n\n")
		_ = rc.Flush()
	}
}

// tapProxy streams one proxy's tap into events until ctx ends or the
// proxy ends the tapwire. A proxy that cannot be tapped gets one error line.
func (s *Server) tapProxy(ctx context.Context, t tapTarget, p tapwire.Params, events chan<- *tapwire.Event) {
	send := func(ev *tapwire.Event) bool {
		select {
		case events <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	fail := func(err error) {
		s.log.Warn("tap: proxy not tapped", "proxy", t.proxy, "admin", t.addr, "error", err)
		send(&tapwire.Event{Time: time.Now(), Proxy: t.proxy, Error: err.Error()})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.addr+"/tap?"+p.Query().Encode(), nil)
	if err != nil {
		fail(fmt.Errorf("tap request: %w", err))
		return
	}
	resp, err := tapClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			fail(fmt.Errorf("reach admin endpoint %s: %w", t.addr, err))
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1024), 4096)
		msg := resp.Status
		if sc.Scan() {
			msg = sc.Text()
		}
		fail(fmt.Errorf("admin endpoint %s: %s", t.addr, msg))
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4096), maxTapLine)
	for sc.Scan() {
		ev := &tapwire.Event{}
		if err := json.Unmarshal(sc.Bytes(), ev); err != nil {
			fail(fmt.Errorf("admin endpoint %s: decode event: %w", t.addr, err))
			return
		}
		ev.Proxy, ev.Error = t.proxy, ""
		if !send(ev) {
			return
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		fail(fmt.Errorf("admin endpoint %s: read events: %w", t.addr, err))
	}
}
