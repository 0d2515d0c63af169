//go:build !linux

package diskstore

// noatime is O_NOATIME where there is one (see noatime_linux.go).
const noatime = 0
