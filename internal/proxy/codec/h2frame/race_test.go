//go:build race

package h2frame

// raceEnabled: under the race detector sync.Pool drops some of what is
// put back, so allocation counts do not hold.
const raceEnabled = true
