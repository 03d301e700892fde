//go:build !race

package h2server

const raceEnabled = false
