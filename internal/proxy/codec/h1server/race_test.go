//go:build race

package h1server

// raceEnabled: the race detector enlarges stacks and heap objects.
const raceEnabled = true
