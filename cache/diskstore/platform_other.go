//go:build !linux

package diskstore

import (
	"errors"
	"syscall"
)

// noatime is O_NOATIME where there is one (see noatime_linux.go).
const noatime = 0

// fatalErrnos are the errors that say the device or file system is
// failing (isFatal); EUCLEAN is Linux's.
var fatalErrnos = []syscall.Errno{syscall.EIO, syscall.EROFS, syscall.ENODEV, syscall.ENXIO, syscall.ESTALE}

// errNoStatfs is statFS's error where the platform has no statfs.
var errNoStatfs = errors.New("diskstore: no statfs on this platform")

// statFS is statfs(2) where the store uses it (platform_linux.go); here
// a lowered capacity is not raised again (see space.go).
func statFS(string) (fsSpace, error) { return fsSpace{}, errNoStatfs }
