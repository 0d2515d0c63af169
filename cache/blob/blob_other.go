//go:build !linux

package blob

import (
	"io"
	"os"
	"syscall"
)

func newFile(string, [][]byte) (*os.File, error) { return nil, ErrUnsupported }

func defaultLimit() int64 { return 0 }

// SendTo copies up to n bytes of the body from the reader's offset (all the
// rest when n < 0) to conn through its Write method: without sendfile, the
// only blobs here are windows of files (FromFile). It returns the bytes
// sent; the reader's offset moves past them.
func (r *Reader) SendTo(conn syscall.Conn, n int64) (int64, error) {
	w, ok := conn.(io.Writer)
	if !ok {
		return 0, ErrUnsupported
	}
	var src io.Reader = r
	if n >= 0 {
		src = io.LimitReader(r, n)
	}
	return io.Copy(w, struct{ io.Reader }{src})
}
