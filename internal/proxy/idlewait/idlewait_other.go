//go:build !linux

package idlewait

func supported() bool                            { return false }
func park(*parked, int64, func()) (uint64, bool) { return 0, false }
func wake(*parked, uint64)                       {}

// Parked is how many connections are parked: none on this platform.
func Parked() int { return 0 }
