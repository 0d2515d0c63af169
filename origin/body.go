package origin

import (
	"io"
	"sync/atomic"
)

// bodyState is what one attempt learns of the client's request body, over
// every copy of it the transport reads (it replays the body on a stale
// keep-alive connection). A nil *bodyState is a request without a body.
type bodyState struct {
	err atomic.Pointer[error] // the first read error, if any
}

// failed returns the error reading the body failed with, or nil.
func (st *bodyState) failed() error {
	if st == nil {
		return nil
	}
	if err := st.err.Load(); err != nil {
		return *err
	}
	return nil
}

// clientBody is one copy of the request body as the transport reads it. It
// records its own read errors in st, so a client fault is recognised
// whatever error the transport wraps around it or reports instead. Errors
// after the transport closed it are the transport's doing and are not
// recorded.
type clientBody struct {
	r      io.Reader
	st     *bodyState
	closed atomic.Bool
}

// Read reads from the client's body and records its error.
func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && !b.closed.Load() {
		b.st.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// Close closes the client's body if it is an io.Closer.
func (b *clientBody) Close() error {
	b.closed.Store(true)
	if c, ok := b.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
