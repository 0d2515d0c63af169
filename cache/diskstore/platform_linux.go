package diskstore

import "syscall"

// noatime is the open flag that spares the kernel an access-time update
// on every read and sendfile of a cache file (O_NOATIME: the store never
// looks at access times). The kernel refuses it (EPERM) on files the
// process does not own; openFile then opens without it.
const noatime = syscall.O_NOATIME

// fatalErrnos are the errors that say the device or file system is
// failing (isFatal).
var fatalErrnos = []syscall.Errno{syscall.EIO, syscall.EROFS, syscall.ENODEV, syscall.ENXIO, syscall.EUCLEAN, syscall.ESTALE}
