package tracestore

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// On-disk retention: each export the store accepts is appended, as an
// OTLP TracesData message, to a segment file under Options.Dir; at start
// the segments are replayed oldest first into memory (where the memory
// bounds keep the newest). Segments rotate at an eighth of the disk
// budget and the oldest are deleted while the budget is exceeded. A
// record is a 4-byte big-endian length, a 4-byte CRC-32C of the payload,
// and the payload; reading a segment stops at its first short or corrupt
// record (a write cut by a crash), keeping what came before. Writes are
// not synced: a crash may lose the newest exports, never older ones.

const (
	// DefaultMaxDiskBytes is the disk budget when Dir is set and
	// MaxDiskBytes is not.
	DefaultMaxDiskBytes = 512 << 20
	segmentSuffix       = ".spans"
	recordHeader        = 8
	// maxRecord bounds one record; larger ones are neither written nor
	// read (an export is at most a few MiB).
	maxRecord = 16 << 20
	// minSegment keeps small budgets from making tiny segments.
	minSegment = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a record that is cut short or fails its checksum.
var errCorrupt = errors.New("corrupt record")

type segment struct {
	seq  uint64
	size int64
}

// disk appends exports to segment files. It is safe for concurrent use.
type disk struct {
	dir    string
	max    int64
	segMax int64
	log    *slog.Logger

	mu     sync.Mutex
	f      *os.File
	cur    segment
	closed []segment // oldest first
	total  int64     // bytes of closed segments
	failed bool      // a write failed: logged once, then retried silently
}

func segmentPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", seq, segmentSuffix))
}

// openDisk replays every segment of dir through add, oldest first, then
// starts a new segment for what comes.
func openDisk(dir string, budget int64, log *slog.Logger, add func([]*tracepb.ResourceSpans)) (*disk, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("trace store dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("trace store dir: %w", err)
	}
	d := &disk{dir: dir, max: budget, segMax: max(budget/8, minSegment), log: log}
	for _, e := range entries {
		name := e.Name()
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if e.IsDir() || !strings.HasSuffix(name, segmentSuffix) || err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("trace store segment %s: %w", name, err)
		}
		d.closed = append(d.closed, segment{seq: seq, size: info.Size()})
		d.total += info.Size()
	}
	slices.SortFunc(d.closed, func(a, b segment) int { return cmp.Compare(a.seq, b.seq) })
	d.prune()
	for _, sg := range d.closed {
		if err := replaySegment(segmentPath(dir, sg.seq), add); err != nil {
			log.Warn("trace store: segment read up to a damaged record", "segment", segmentPath(dir, sg.seq), "err", err)
		}
	}
	next := uint64(1)
	if n := len(d.closed); n > 0 {
		next = d.closed[n-1].seq + 1
	}
	if err := d.startSegment(next); err != nil {
		return nil, err
	}
	return d, nil
}

func replaySegment(path string, add func([]*tracepb.ResourceSpans)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return readRecords(f, func(td *tracepb.TracesData) { add(td.GetResourceSpans()) })
}

// readRecords reads records until EOF or the first damaged one.
func readRecords(r io.Reader, each func(*tracepb.TracesData)) error {
	var hdr [recordHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%w: short header", errCorrupt)
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n > maxRecord {
			return fmt.Errorf("%w: length %d over %d", errCorrupt, n, maxRecord)
		}
		// Read what is there rather than allocate what the header
		// claims: a damaged length costs no more than the file holds.
		payload, err := io.ReadAll(io.LimitReader(r, int64(n)))
		if err != nil || len(payload) != int(n) {
			return fmt.Errorf("%w: short payload", errCorrupt)
		}
		if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
			return fmt.Errorf("%w: checksum", errCorrupt)
		}
		td := &tracepb.TracesData{}
		if err := proto.Unmarshal(payload, td); err != nil {
			return fmt.Errorf("%w: %v", errCorrupt, err)
		}
		each(td)
	}
}

func (d *disk) startSegment(seq uint64) error {
	f, err := os.OpenFile(segmentPath(d.dir, seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("trace store segment: %w", err)
	}
	d.f, d.cur = f, segment{seq: seq}
	return nil
}

// append writes one export. Errors are logged (once until a write
// succeeds again), never returned: the in-memory store goes on.
func (d *disk) append(rss []*tracepb.ResourceSpans) {
	payload, err := proto.Marshal(&tracepb.TracesData{ResourceSpans: rss})
	if err != nil || len(payload) > maxRecord {
		return
	}
	rec := make([]byte, recordHeader+len(payload))
	binary.BigEndian.PutUint32(rec[:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(rec[4:8], crc32.Checksum(payload, crcTable))
	copy(rec[recordHeader:], payload)

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return
	}
	n, err := d.f.Write(rec)
	d.cur.size += int64(n)
	if err != nil {
		if !d.failed {
			d.log.Warn("trace store: cannot write to disk; spans stay in memory only", "dir", d.dir, "err", err)
		}
		d.failed = true
		return
	}
	d.failed = false
	if d.cur.size >= d.segMax {
		d.f.Close()
		d.closed = append(d.closed, d.cur)
		d.total += d.cur.size
		if err := d.startSegment(d.cur.seq + 1); err != nil {
			d.f = nil
			d.log.Warn("trace store: cannot start a segment; spans stay in memory only", "err", err)
		}
	}
	d.prune()
}

// prune deletes the oldest closed segments while over the budget.
func (d *disk) prune() {
	for len(d.closed) > 0 && d.total+d.cur.size > d.max {
		old := d.closed[0]
		if err := os.Remove(segmentPath(d.dir, old.seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("trace store: cannot delete an old segment", "err", err)
		}
		d.closed = d.closed[1:]
		d.total -= old.size
	}
}

// usage is the bytes the segments take.
func (d *disk) usage() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total + d.cur.size
}

func (d *disk) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}
