// Package allocstest counts what a function allocates per call, for the
// tests that bound it, steadily on a loaded machine.
//
// testing.AllocsPerRun counts every allocation the process makes while
// it runs the function: a goroutine an earlier test left (a timer's
// callback, a connection winding down) or a pool a collection emptied
// adds to the count, as this project's CI runs showed. An allocation
// the function makes on every call is in every round, so the fewest of
// a few rounds is the function's own count.
package allocstest

import "testing"

// Rounds is how many rounds Fewest measures.
const Rounds = 5

// Fewest is the fewest allocations per call of f that
// testing.AllocsPerRun counts in Rounds rounds of runs calls each. Like
// testing.AllocsPerRun, it must not be called from a parallel test.
func Fewest(runs int, f func()) float64 {
	n := testing.AllocsPerRun(runs, f)
	for range Rounds - 1 {
		if n == 0 {
			break
		}
		n = min(n, testing.AllocsPerRun(runs, f))
	}
	return n
}
