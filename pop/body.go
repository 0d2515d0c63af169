package pop

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/cache/blob"
)

// defaultBlobMin is the body size from which a stored body is kept in a
// blob (a sealed memory file, sent with sendfile) rather than on the heap.
// Below it the saved copy is worth less than the file descriptor and the
// extra system calls.
const defaultBlobMin = 16 << 10

// storedBody is a body on its way into an Entry: on the heap or in a blob.
type storedBody struct {
	heap []byte
	blob *blob.Blob
}

func (b storedBody) size() int64 {
	if b.blob != nil {
		return b.blob.Size()
	}
	return int64(len(b.heap))
}

// writeBody sends a stored entry's body after its header. A body in a blob
// on a plain HTTP/1.1 connection goes out with sendfile: io.Copy hands the
// blob's reader to the response's ReadFrom, which hands it to the
// connection's (sendfileConn.ReadFrom) once the header is written.
// (Corking the socket so the header leaves with the body measured no
// better: two more system calls for one packet fewer.)
func writeBody(w http.ResponseWriter, e *cache.Entry) int64 {
	if e.Blob == nil {
		n, _ := w.Write(e.Body)
		return int64(n)
	}
	n, _ := io.Copy(w, e.Blob.NewReader())
	return n
}

// sendfileListener wraps the plain serving listener's TCP connections in
// sendfileConn.
type sendfileListener struct {
	net.Listener
	sent *atomic.Uint64 // counts the bytes sent with sendfile
}

// Accept returns the next connection, as a *sendfileConn when it is TCP.
func (l sendfileListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		return &sendfileConn{TCPConn: tc, sent: l.sent}, nil
	}
	return c, err
}

// sendfileConn is a client's TCP connection whose ReadFrom sends blob
// bodies (whole, or a range of one through io.LimitedReader) with
// sendfile, and everything else as *net.TCPConn would.
type sendfileConn struct {
	*net.TCPConn
	sent *atomic.Uint64
}

// ReadFrom sends what r reads.
func (c *sendfileConn) ReadFrom(r io.Reader) (int64, error) {
	switch src := r.(type) {
	case *blob.Reader:
		n, err := src.SendTo(c.TCPConn, -1)
		c.sent.Add(uint64(n))
		return n, err
	case *io.LimitedReader:
		if br, ok := src.R.(*blob.Reader); ok {
			n, err := br.SendTo(c.TCPConn, src.N)
			src.N -= n
			c.sent.Add(uint64(n))
			return n, err
		}
	}
	return c.TCPConn.ReadFrom(r)
}

// copyTo copies src into w, through w's own ReadFrom when it has one (so a
// wrapper's ReadFrom never loops back into itself through io.Copy).
func copyTo(w http.ResponseWriter, src io.Reader) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{w}, src)
}

// writerOnly hides every method of a writer but Write.
type writerOnly struct{ io.Writer }
