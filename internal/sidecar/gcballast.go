package sidecar

// gcBallastBytes is the GC ballast the sidecar's memory trimmer holds
// while the sidecar is busy (internal/memtrim says why).
const gcBallastBytes = 4 << 20

// gcBallast is the ballast for a process whose environment is getenv:
// none when GOGC is set, as its user has tuned the collector.
func gcBallast(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		return 0
	}
	return gcBallastBytes
}
