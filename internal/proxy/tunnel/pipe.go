package tunnel

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// PipeBoth copies both ways until each direction has ended. A FIN from
// one side is passed on as a half-close and the other direction keeps
// flowing; an error or the idle timeout (no bytes either way for idle)
// ends both. It returns the bytes sent downstream and upstream, and
// whether the idle timeout ended the session.
func PipeBoth(down, up net.Conn, idle time.Duration) (toDown, toUp int64, idled bool) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	type result struct {
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := pipe(up, down, idle, &last)
		res <- result{n, err}
	}()
	toDown, err := pipe(down, up, idle, &last)
	if err != nil {
		// Unblock the other direction.
		_ = down.Close()
		_ = up.Close()
	}
	r := <-res
	if r.err != nil && err == nil {
		_ = down.Close()
		_ = up.Close()
	}
	return toDown, r.n, errors.Is(err, errIdle) || errors.Is(r.err, errIdle)
}

// errIdle ends a TCP session idle for too long.
var errIdle = errors.New("tcp session idle")

// pipe copies src to dst through a pooled buffer; at src's EOF it
// half-closes dst. It returns the bytes written to dst.
func pipe(dst, src net.Conn, idle time.Duration, last *atomic.Int64) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		_ = src.SetReadDeadline(time.Now().Add(idle))
		n, rerr := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			_ = dst.SetWriteDeadline(time.Now().Add(idle))
			wn, werr := dst.Write(buf[:n])
			total += int64(wn)
			if werr != nil {
				return total, werr
			}
		}
		switch {
		case rerr == nil:
		case rerr == io.EOF:
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			} else {
				_ = dst.Close()
			}
			return total, nil
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			if time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other direction is busy
			}
			return total, errIdle
		default:
			return total, rerr
		}
	}
}

// bufPool holds the 32 KiB buffers tunnels copy through.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
