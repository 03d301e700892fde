//go:build race

package h2server

// raceEnabled: the race detector enlarges stacks and heap objects.
const raceEnabled = true
