package h2frame

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestBodyBufModel runs random sequences of appends, reads, consumes and
// resets against a plain byte slice: the unread bytes always agree, and
// a buffer with nothing unread holds no array.
func TestBodyBufModel(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var q BodyBuf
		var model []byte
		next := byte(0)
		for step := range 300 {
			switch op := rng.IntN(10); {
			case op < 4: // append, sometimes past the pool's array
				n := rng.IntN(BodyBufSize / 4)
				if rng.IntN(8) == 0 {
					n = BodyBufSize + rng.IntN(BodyBufSize)
				}
				p := make([]byte, n)
				for i := range p {
					p[i] = next
					next++
				}
				q.Append(p)
				model = append(model, p...)
			case op < 7: // read into a buffer of random size
				p := make([]byte, rng.IntN(BodyBufSize/2)+1)
				n := q.Read(p)
				want := min(len(p), len(model))
				if n != want || !bytes.Equal(p[:n], model[:n]) {
					t.Fatalf("seed %d step %d: Read got %d bytes, want %d equal to the model's", seed, step, n, want)
				}
				model = model[n:]
			case op < 9: // consume part of what Bytes shows
				if len(model) == 0 {
					continue
				}
				n := rng.IntN(len(model)) + 1
				if !bytes.Equal(q.Bytes()[:n], model[:n]) {
					t.Fatalf("seed %d step %d: Bytes disagrees with the model", seed, step)
				}
				q.Consume(n)
				model = model[n:]
			default:
				q.Reset()
				model = nil
			}
			if q.Len() != len(model) || !bytes.Equal(q.Bytes(), model) {
				t.Fatalf("seed %d step %d: %d bytes buffered, model has %d", seed, step, q.Len(), len(model))
			}
			if q.Len() == 0 && (q.b != nil || q.pooled != nil) {
				t.Fatalf("seed %d step %d: empty buffer still holds an array", seed, step)
			}
		}
	}
}

// TestBodyBufAllocations: relaying a 1 KB body through a BodyBuf, as a
// unary call does, allocates nothing once the pool has an array.
func TestBodyBufAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops some arrays under the race detector")
	}
	body := make([]byte, 1024)
	out := make([]byte, 32<<10)
	var q BodyBuf
	allocs := testing.AllocsPerRun(1000, func() {
		q.Append(body)
		for q.Len() > 0 {
			q.Read(out)
		}
	})
	if allocs > 0.1 {
		t.Fatalf("%.2f allocations per relayed body, want none", allocs)
	}
}
