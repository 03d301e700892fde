//go:build race

package tracing

// raceEnabled: sync.Pool drops items at random under the race detector,
// so allocation counts are checked only without it.
const raceEnabled = true
