package accesslog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Writer. The zero value gives the defaults.
type Options struct {
	// QueueLines bounds how many lines wait for the disk; default 4096.
	QueueLines int
	// QueueBytes bounds the bytes they hold; default 4 MiB. A line that
	// would go past either bound is dropped.
	QueueBytes int
	// BatchBytes is how much the writer goroutine gathers into one write;
	// default 64 KiB. A longer line is written alone.
	BatchBytes int
	// ErrorInterval is the least time between two log records about
	// failed writes or dropped lines; default 10s. Every drop is counted
	// whatever the interval.
	ErrorInterval time.Duration
	// FlushTimeout bounds how long the last Close waits for queued lines
	// to reach the file; default 5s. Lines still queued then are dropped.
	FlushTimeout time.Duration
	// Logger receives those records; default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.QueueLines <= 0 {
		o.QueueLines = 4096
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 4 << 20
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 64 << 10
	}
	if o.ErrorInterval <= 0 {
		o.ErrorInterval = 10 * time.Second
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ErrClosed is returned by Close on a Writer already closed as many
// times as it was opened.
var ErrClosed = errors.New("access log writer already closed")

// ErrFlushTimeout is returned by the last Close when queued lines did
// not reach the file within Options.FlushTimeout.
var ErrFlushTimeout = errors.New("access log flush timed out")

// Writer appends access log lines to one file without ever making the
// request path wait for it: Log copies the line into a bounded queue and
// returns; one goroutine per Writer gathers queued lines into batches and
// writes them. When the queue is full (the disk or the pipe behind
// /dev/stdout is slower than the traffic) or a write fails (ENOSPC, a
// closed pipe), lines are dropped and counted in Dropped; the failure is
// logged at most once per Options.ErrorInterval. Lines from one
// goroutine reach the file in the order they were logged.
//
// A Writer is safe for concurrent use. Each Open, Get or NewWriter is
// matched by one Close.
type Writer struct {
	name string
	opts Options

	ch       chan *[]byte
	queued   atomic.Int64 // bytes in ch
	inflight atomic.Int64 // Log calls between their closed check and their send
	closed   atomic.Bool
	abandon  atomic.Bool // Close gave up waiting: drop the rest
	written  atomic.Uint64
	dropped  atomic.Uint64
	full     atomic.Uint64 // the part of dropped lost to a full queue
	reopenCh chan struct{}
	stop     chan struct{}
	done     chan struct{}

	// path is the file to reopen; "" when the Writer does not own its
	// file (stdout, stderr, NewWriter).
	path string
	file atomic.Pointer[os.File] // the owned file, if any
	out  io.Writer               // used only by the goroutine

	// Reference count for the registry; guarded by mu.
	mu   sync.Mutex
	refs int
	reg  *Registry
	key  string

	// Owned by the goroutine.
	batch      []byte
	lineEnds   []int
	lastReport time.Time
	reported   uint64 // dropped count at the last report
	closeErr   error
}

// Open starts a Writer appending to path, creating the file if needed
// (mode 0644, as Envoy creates it). "/dev/stdout" and "/dev/stderr" write
// to the process's standard output and error, which Close leaves open.
func Open(path string, opts Options) (*Writer, error) {
	switch path {
	case "/dev/stdout":
		return newWriter(path, os.Stdout, "", nil, opts), nil
	case "/dev/stderr":
		return newWriter(path, os.Stderr, "", nil, opts), nil
	}
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	return newWriter(path, f, path, f, opts), nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open access log: %w", err)
	}
	return f, nil
}

// NewWriter starts a Writer on w, which it does not own: Close does not
// close w. name identifies it in log records. It serves tests and
// embedders that log somewhere other than a file.
func NewWriter(name string, w io.Writer, opts Options) *Writer {
	return newWriter(name, w, "", nil, opts)
}

func newWriter(name string, out io.Writer, path string, f *os.File, opts Options) *Writer {
	opts = opts.withDefaults()
	w := &Writer{
		name:     name,
		opts:     opts,
		ch:       make(chan *[]byte, opts.QueueLines),
		reopenCh: make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		path:     path,
		out:      out,
		refs:     1,
	}
	w.file.Store(f)
	go w.run()
	return w
}

// Name returns the path (or NewWriter's name) the Writer writes to.
func (w *Writer) Name() string { return w.name }

// Written returns how many lines reached the file.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Dropped returns how many lines were lost: queue full, write failed, or
// logged after Close. The proxy exposes it as a counter.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// bufPool holds line buffers; the queue carries pointers to them so a
// steady stream of lines allocates nothing.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooled keeps one huge line from pinning a huge buffer in the pool.
const maxPooled = 64 << 10

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooled {
		bufPool.Put(b)
	}
}

// Log queues a copy of line and returns at once; line may be reused as
// soon as Log returns. An empty line is ignored.
func (w *Writer) Log(line []byte) {
	if len(line) == 0 {
		return
	}
	if !w.enter() {
		return
	}
	defer w.inflight.Add(-1)
	if !w.reserve(len(line)) {
		return
	}
	bp := bufPool.Get().(*[]byte)
	*bp = append((*bp)[:0], line...)
	w.send(bp)
}

// LogEntry formats e with f straight into a pooled buffer and queues it,
// which saves the proxy a buffer and a copy. The formatting runs on the
// caller's goroutine (it reads e, which the caller may reuse after).
func (w *Writer) LogEntry(f *Format, e *Entry) {
	if !w.enter() {
		return
	}
	defer w.inflight.Add(-1)
	if len(w.ch) == cap(w.ch) {
		w.dropFull()
		return
	}
	bp := bufPool.Get().(*[]byte)
	*bp = f.Append((*bp)[:0], e)
	if len(*bp) == 0 || !w.reserve(len(*bp)) {
		putBuf(bp)
		return
	}
	w.send(bp)
}

// enter registers a Log call, or counts the line as dropped when the
// Writer is closed. Close waits for registered calls to finish sending,
// so none can send after the goroutine's final drain.
func (w *Writer) enter() bool {
	w.inflight.Add(1)
	if w.closed.Load() {
		w.inflight.Add(-1)
		w.dropped.Add(1)
		return false
	}
	return true
}

// reserve claims queue room for n bytes, or counts a drop.
func (w *Writer) reserve(n int) bool {
	if len(w.ch) == cap(w.ch) {
		w.dropFull()
		return false
	}
	if w.queued.Add(int64(n)) > int64(w.opts.QueueBytes) {
		w.queued.Add(-int64(n))
		w.dropFull()
		return false
	}
	return true
}

func (w *Writer) send(bp *[]byte) {
	select {
	case w.ch <- bp:
	default:
		w.queued.Add(-int64(len(*bp)))
		putBuf(bp)
		w.dropFull()
	}
}

func (w *Writer) dropFull() {
	w.dropped.Add(1)
	w.full.Add(1)
}

// Reopen asks the Writer to close and reopen its file, so that a rotated
// log (logrotate's move-and-signal, or Envoy's SIGUSR1 convention)
// continues in a new file. It does not wait. Lines logged after it
// returns go to the new file; lines already queued go to either. It does
// nothing for stdout, stderr and NewWriter.
func (w *Writer) Reopen() {
	if w.path == "" {
		return
	}
	select {
	case w.reopenCh <- struct{}{}:
	default: // one is already pending
	}
}

// Close releases one reference. The last one stops accepting lines,
// writes what is queued (within Options.FlushTimeout), closes the file it
// owns and stops the goroutine.
func (w *Writer) Close() error {
	last, err := w.release()
	if !last {
		return err
	}
	return w.shutdown()
}

// release drops one reference and reports whether it was the last; the
// last one also leaves the registry, so a later Get opens afresh.
func (w *Writer) release() (bool, error) {
	if w.reg != nil {
		w.reg.mu.Lock()
		defer w.reg.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.refs <= 0 {
		return false, fmt.Errorf("close access log %s: %w", w.name, ErrClosed)
	}
	w.refs--
	if w.refs > 0 {
		return false, nil
	}
	if w.reg != nil && w.reg.writers[w.key] == w {
		delete(w.reg.writers, w.key)
	}
	return true, nil
}

func (w *Writer) shutdown() error {
	w.closed.Store(true)
	for w.inflight.Load() > 0 {
		runtime.Gosched() // a Log call is between its check and its send: nanoseconds
	}
	close(w.stop)
	t := time.NewTimer(w.opts.FlushTimeout)
	defer t.Stop()
	select {
	case <-w.done:
		return w.closeErr
	case <-t.C:
	}
	// The write is stuck (a pipe nobody reads). Drop the rest; closing an
	// owned file unblocks a pending write on a pipe or socket.
	w.abandon.Store(true)
	if f := w.file.Load(); f != nil {
		_ = f.Close()
	}
	return fmt.Errorf("close access log %s: %w", w.name, ErrFlushTimeout)
}

// run is the Writer's goroutine: it owns out, batch and the file.
func (w *Writer) run() {
	defer close(w.done)
	for {
		select {
		case bp := <-w.ch:
			w.reopenIfAsked()
			w.gather(bp)
			w.flush()
		case <-w.reopenCh:
			w.reopen()
		case <-w.stop:
			for {
				select {
				case bp := <-w.ch:
					w.gather(bp)
					w.flush()
					continue
				default:
				}
				break
			}
			if f := w.file.Load(); f != nil {
				if err := f.Close(); err != nil && !w.abandon.Load() {
					w.closeErr = fmt.Errorf("close access log %s: %w", w.name, err)
				}
			}
			return
		}
	}
}

// reopenIfAsked serves a pending Reopen before the next batch, so that a
// line logged after Reopen returned goes to the new file.
func (w *Writer) reopenIfAsked() {
	select {
	case <-w.reopenCh:
		w.reopen()
	default:
	}
}

// gather moves bp and whatever else is queued, up to BatchBytes, into
// the batch. It stops early when a Reopen is pending, so the lines logged
// after it are not written to the old file.
func (w *Writer) gather(bp *[]byte) {
	w.add(bp)
	for len(w.batch) < w.opts.BatchBytes && len(w.reopenCh) == 0 {
		select {
		case bp := <-w.ch:
			w.add(bp)
		default:
			return
		}
	}
}

func (w *Writer) add(bp *[]byte) {
	w.queued.Add(-int64(len(*bp)))
	w.batch = append(w.batch, *bp...)
	w.lineEnds = append(w.lineEnds, len(w.batch))
	putBuf(bp)
}

// flush writes the batch, counts what reached the file and what did not,
// and reports failures.
func (w *Writer) flush() {
	lines := len(w.lineEnds)
	if lines == 0 {
		return
	}
	var err error
	n := 0
	if !w.abandon.Load() {
		n, err = w.out.Write(w.batch)
	}
	ok := 0
	for ok < lines && w.lineEnds[ok] <= n {
		ok++
	}
	w.written.Add(uint64(ok))
	w.dropped.Add(uint64(lines - ok))
	if cap(w.batch) > 4*w.opts.BatchBytes {
		w.batch = nil // one huge line: do not keep its buffer
	} else {
		w.batch = w.batch[:0]
	}
	w.lineEnds = w.lineEnds[:0]
	if err != nil || w.full.Load() != 0 {
		w.report(err)
	}
}

// report logs a write error or new drops, at most once per
// ErrorInterval; the record carries the drops since the previous one.
func (w *Writer) report(err error) {
	dropped := w.dropped.Load()
	if dropped == w.reported && err == nil {
		return
	}
	now := time.Now()
	if !w.lastReport.IsZero() && now.Sub(w.lastReport) < w.opts.ErrorInterval {
		return
	}
	w.lastReport = now
	attrs := []any{
		slog.String("path", w.name),
		slog.Uint64("dropped", dropped-w.reported),
		slog.Uint64("dropped_total", dropped),
		slog.Uint64("queue_full_total", w.full.Load()),
	}
	w.reported = dropped
	if err != nil {
		w.opts.Logger.Error("access log write failed; lines dropped", append(attrs, slog.Any("error", err))...)
		return
	}
	w.opts.Logger.Warn("access log lines dropped", attrs...)
}

// reopen swaps in a freshly opened file; on failure the old one stays.
func (w *Writer) reopen() {
	f, err := openFile(w.path)
	if err != nil {
		w.opts.Logger.Error("reopen access log failed; still writing to the old file",
			slog.String("path", w.path), slog.Any("error", err))
		return
	}
	old := w.file.Swap(f)
	w.out = f
	if old != nil {
		_ = old.Close()
	}
}
