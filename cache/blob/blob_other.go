//go:build !linux

package blob

import (
	"os"
	"syscall"
)

func newFile(string, [][]byte) (*os.File, error) { return nil, ErrUnsupported }

func defaultLimit() int64 { return 0 }

// SendTo is never reached where New cannot make a Blob.
func (r *Reader) SendTo(syscall.Conn, int64) (int64, error) { return 0, ErrUnsupported }
