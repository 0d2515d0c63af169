package bench

import (
	"context"
	"io"
	"time"
)

// client sends one request at a time to one server and reads each response
// whole. Each virtual client owns one; it is not safe for concurrent use.
// h1Client speaks HTTP/1.1, stdClient HTTP/2 and HTTP/3.
type client interface {
	// do sends a request for path (path and query) and reads the response
	// into resp, within deadline. Failures are *requestError.
	do(ctx context.Context, path []byte, deadline time.Time, resp *response) error
	// setAddr makes later requests go to addr (host:port), closing the
	// connection to another address.
	setAddr(addr string)
	// close closes the connection, if any.
	close()
}

// response is what a client reads of one response. Its buffers are reused
// from request to request.
type response struct {
	// body, if set, receives the body (after chunked decoding).
	body io.Writer

	status    int
	bodyBytes int64
	// cacheStatus is the value of the last Cache-Status field line.
	cacheStatus []byte
	// addr is the address the response came from.
	addr string
	// proto is the response's protocol version ("HTTP/2.0"); the HTTP/1.1
	// client leaves it empty, meaning HTTP/1.1.
	proto string
}

func (r *response) reset(body io.Writer) {
	r.body = body
	r.status = 0
	r.bodyBytes = 0
	r.proto = ""
	r.cacheStatus = r.cacheStatus[:0]
}
