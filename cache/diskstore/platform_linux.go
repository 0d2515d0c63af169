package diskstore

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// noatime is the open flag that spares the kernel an access-time update
// on every read and sendfile of a cache file (O_NOATIME: the store never
// looks at access times). The kernel refuses it (EPERM) on files the
// process does not own; openFile then opens without it.
const noatime = syscall.O_NOATIME

// fatalErrnos are the errors that say the device or file system is
// failing (isFatal).
var fatalErrnos = []syscall.Errno{syscall.EIO, syscall.EROFS, syscall.ENODEV, syscall.ENXIO, syscall.EUCLEAN, syscall.ESTALE}

// statFS reports the free space and size of the file system under dir
// (statfs(2); see space.go).
func statFS(dir string) (fsSpace, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fsSpace{}, fmt.Errorf("diskstore: statfs %s: %w", dir, err)
	}
	bs := st.Frsize // the unit of the block counts; 0 before Linux 2.6
	if bs <= 0 {
		bs = st.Bsize
	}
	sp := fsSpace{avail: int64(st.Bavail) * bs, total: int64(st.Blocks) * bs}
	if st.Files > 0 && st.Ffree == 0 { // no inode left: no new file fits
		sp.avail = 0
	}
	return sp, nil
}
