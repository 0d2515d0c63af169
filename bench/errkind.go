package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
)

// errKind is why a request failed; a request has at most one.
type errKind uint8

const (
	errNone      errKind = iota
	errDNS               // the DNS server gave no usable answer
	errConnect           // no TCP connection
	errTLS               // the TLS handshake failed
	errWrite             // the request could not be sent
	errRead              // the connection closed or broke before the response was complete
	errTimeout           // no complete response within Config.Timeout
	errProtocol          // the response was not valid HTTP, or came on another protocol than asked
	errStatus4xx         // the response's status was 4xx
	errStatus5xx         // the response's status was 5xx
	errBody              // the body was not the synthetic object's (Config.Verify)
	numErrKinds
)

var errKindNames = [numErrKinds]string{
	errNone:      "none",
	errDNS:       "dns",
	errConnect:   "connect",
	errTLS:       "tls",
	errWrite:     "write",
	errRead:      "read",
	errTimeout:   "timeout",
	errProtocol:  "protocol",
	errStatus4xx: "status_4xx",
	errStatus5xx: "status_5xx",
	errBody:      "body_mismatch",
}

func (k errKind) String() string { return errKindNames[k] }

// requestError is a failed request: its kind and the cause.
type requestError struct {
	kind errKind
	err  error
}

func (e *requestError) Error() string { return fmt.Sprintf("%s: %v", e.kind, e.err) }
func (e *requestError) Unwrap() error { return e.err }

// failure wraps err as a failure of the given kind, unless it is a
// timeout, which is always errTimeout.
func failure(kind errKind, err error) error {
	if isTimeout(err) {
		kind = errTimeout
	}
	return &requestError{kind: kind, err: err}
}

// kindOf returns the kind of a request's error.
func kindOf(err error) errKind {
	if err == nil {
		return errNone
	}
	if re, ok := errors.AsType[*requestError](err); ok {
		return re.kind
	}
	if isTimeout(err) {
		return errTimeout
	}
	return errRead
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}
