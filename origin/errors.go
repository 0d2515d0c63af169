package origin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
)

// Kind classifies an origin failure.
type Kind int

// The kinds of origin failure.
const (
	KindUnreachable Kind = iota + 1 // no connection could be made
	KindTimeout                     // connect, first byte or body idle timeout
	KindBody                        // the connection failed while reading the body
	KindProtocol                    // the origin's answer was not valid HTTP
	KindRequest                     // the request could not be formed
	// KindClient is a fault of the client, not of the origin: reading the
	// request body (Request.Body, the client's content) failed, because
	// its framing was malformed, the client went away or its read
	// deadline passed. It never counts against the server.
	KindClient
)

// String names the kind, as in error messages.
func (k Kind) String() string {
	switch k {
	case KindUnreachable:
		return "unreachable"
	case KindTimeout:
		return "timeout"
	case KindBody:
		return "body"
	case KindProtocol:
		return "protocol"
	case KindRequest:
		return "request"
	case KindClient:
		return "client"
	}
	return "unknown"
}

// Error is a failed origin request.
type Error struct {
	Kind   Kind
	Server string // host:port of the origin server
	Err    error
}

// Error reads "origin SERVER: KIND: reason".
func (e *Error) Error() string {
	return fmt.Sprintf("origin %s: %s: %v", e.Server, e.Kind, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Status is the status code a proxy answers with for this failure: for a
// client fault, 408 when reading the request body timed out and 400
// otherwise (RFC 9110 §15.5.9, §15.5.1); 504 for timeouts and 502 for the
// rest (RFC 9110 §15.6.5, §15.6.3).
func (e *Error) Status() int {
	switch {
	case e.Kind == KindClient && isTimeout(e.Err):
		return http.StatusRequestTimeout
	case e.Kind == KindClient:
		return http.StatusBadRequest
	case e.Kind == KindTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// isTimeout reports whether err is a passed deadline: a net.Conn's read
// deadline (os.ErrDeadlineExceeded), a context's, or any net.Error that
// says it timed out.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// StatusFor returns the status a proxy answers with for err: the *Error's
// Status, or 502 for anything else.
func StatusFor(err error) int {
	if oe, ok := errors.AsType[*Error](err); ok {
		return oe.Status()
	}
	return http.StatusBadGateway
}

// classify turns an error from http.Client.Do into a *Error.
func classify(server string, err error) *Error {
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return &Error{Kind: KindTimeout, Server: server, Err: err}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return &Error{Kind: KindUnreachable, Server: server, Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Kind: KindRequest, Server: server, Err: err}
	}
	return &Error{Kind: KindProtocol, Server: server, Err: err}
}
