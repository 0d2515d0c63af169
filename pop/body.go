package pop

import (
	"io"
	"net/http"

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
// connection's (fastpath.Listener's connections) once the header is
// written. (Corking the socket so the header leaves with the body
// measured no better: two more system calls for one packet fewer.) The
// send timeout applies on every protocol: on HTTP/1 through the
// connection, on HTTP/2 and HTTP/3 through streamWriter, which writes a
// large body in chunks and moves the stream's write deadline on between
// them.
func writeBody(w http.ResponseWriter, e *cache.Entry) int64 {
	if e.Blob == nil {
		n, _ := w.Write(e.Body)
		return int64(n)
	}
	n, _ := io.Copy(w, e.Blob.NewReader())
	return n
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
