package origin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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

// Status is the status code a proxy answers with for this failure: 504 for
// timeouts, 502 for the rest (RFC 9110 §15.6.3, §15.6.5).
func (e *Error) Status() int {
	if e.Kind == KindTimeout {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
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
