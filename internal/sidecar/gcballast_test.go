package sidecar

import "testing"

// TestNoBallastWhenGOGCIsSet: a user who tuned the collector keeps
// their setting alone.
func TestNoBallastWhenGOGCIsSet(t *testing.T) {
	env := func(gogc string) func(string) string {
		return func(k string) string {
			if k == "GOGC" {
				return gogc
			}
			return ""
		}
	}
	if got := gcBallast(env("")); got != gcBallastBytes {
		t.Errorf("GOGC unset: ballast %d, want %d", got, gcBallastBytes)
	}
	if got := gcBallast(env("200")); got != 0 {
		t.Errorf("GOGC=200: ballast %d, want none", got)
	}
}
