//go:build unix

package diskstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes the directory's lock file, so that two stores (two PoP
// processes given the same path) never share a directory: they would
// evict, purge and overwrite each other's files. The kernel drops the lock
// when the process dies, kill -9 included.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("diskstore: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("diskstore: %s is in use by another store (%s is locked); each cache directory belongs to one PoP process", dir, path)
		}
		return nil, fmt.Errorf("diskstore: lock %s: %w", path, err)
	}
	return f, nil
}
