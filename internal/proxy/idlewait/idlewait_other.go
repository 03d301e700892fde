//go:build !linux

package idlewait

func supported() bool                  { return false }
func park(*parked, int64, func()) bool { return false }
func wake(*parked)                     {}

// Parked is how many connections are parked: none on this platform.
func Parked() int { return 0 }
