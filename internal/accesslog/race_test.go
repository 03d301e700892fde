//go:build race

package accesslog

// raceEnabled: the race detector's sync.Pool drops items at random, so
// allocation counts through the pool are not meaningful under -race.
const raceEnabled = true
