package rawsock

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

// rwConn is the reading and writing side under test: a Sock, or the
// TCPConn itself.
type rwConn interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
}

// errClass sorts an error as the PoP's callers tell them apart.
func errClass(err error) string {
	var op *net.OpError
	var se *os.SyscallError
	ne, isNet := err.(net.Error)
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	case !errors.As(err, &op):
		return "not an OpError: " + err.Error()
	case errors.Is(err, os.ErrDeadlineExceeded) && isNet && ne.Timeout():
		return op.Op + ": deadline"
	case errors.Is(err, net.ErrClosed):
		return op.Op + ": closed"
	case errors.As(err, &se) && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)):
		return op.Op + ": " + se.Syscall + ": peer gone"
	}
	return "other: " + err.Error()
}

// loopConn reads with one Loop per Read, whose step makes one ReadNow and
// waits while it would block.
type loopConn struct{ *Sock }

func (c *loopConn) Read(p []byte) (int, error) {
	var n int
	var err error
	lerr := c.Loop(func() bool {
		n, err = c.ReadNow(p)
		return err != ErrWouldBlock
	})
	if lerr != nil {
		return 0, lerr
	}
	return n, err
}

// TestSockMatchesTCPConn checks that a Sock reads (with Read, and with
// Loop and ReadNow), writes and fails as net.TCPConn does, case by case (differential: the fast path's callers,
// net/http and crypto/tls among them, tell errors apart by these).
func TestSockMatchesTCPConn(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, s rwConn, server, client *net.TCPConn) string
	}{
		{"read what the peer sent", func(t *testing.T, s rwConn, _, client *net.TCPConn) string {
			client.Write([]byte("hello"))
			buf := make([]byte, 16)
			n, err := io.ReadAtLeast(s, buf, 5)
			return string(buf[:n]) + " " + errClass(err)
		}},
		{"read of nothing", func(t *testing.T, s rwConn, _, _ *net.TCPConn) string {
			n, err := s.Read(nil)
			return fmt.Sprintf("%s %d", errClass(err), n)
		}},
		{"read at the peer's close", func(t *testing.T, s rwConn, _, client *net.TCPConn) string {
			client.Close()
			_, err := s.Read(make([]byte, 8))
			return errClass(err)
		}},
		{"read past the deadline", func(t *testing.T, s rwConn, server, _ *net.TCPConn) string {
			server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			_, err := s.Read(make([]byte, 8))
			return errClass(err)
		}},
		{"read of a closed connection", func(t *testing.T, s rwConn, server, _ *net.TCPConn) string {
			server.Close()
			_, err := s.Read(make([]byte, 8))
			return errClass(err)
		}},
		{"write a large body", func(t *testing.T, s rwConn, _, client *net.TCPConn) string {
			body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than the socket takes at once
			got := make(chan []byte)
			go func() { b, _ := io.ReadAll(io.LimitReader(client, int64(len(body)))); got <- b }()
			n, err := s.Write(body)
			ok := bytes.Equal(<-got, body) && n == len(body)
			return errClass(err) + map[bool]string{true: " all bytes", false: " wrong bytes"}[ok]
		}},
		{"write past the deadline to a peer that reads nothing", func(t *testing.T, s rwConn, server, _ *net.TCPConn) string {
			body := make([]byte, 64<<20) // far more than the socket buffers hold
			server.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := s.Write(body)
			if n <= 0 || n >= len(body) {
				return fmt.Sprintf("wrote %d", n)
			}
			return errClass(err) + " part written"
		}},
		{"write to a peer that reset", func(t *testing.T, s rwConn, _, client *net.TCPConn) string {
			client.SetLinger(0)
			client.Close()
			var err error
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
				if _, err = s.Write([]byte("x")); err != nil {
					break
				}
			}
			return errClass(err)
		}},
		{"write to a closed connection", func(t *testing.T, s rwConn, server, _ *net.TCPConn) string {
			server.Close()
			_, err := s.Write([]byte("x"))
			return errClass(err)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			server, client := tcpPair(t)
			want := tc.run(t, server, server, client)
			server, client = tcpPair(t)
			rs := New(server)
			if rs == nil {
				t.Fatal("no raw socket")
			}
			if got := tc.run(t, rs, server, client); got != want {
				t.Errorf("Sock: %q, net.TCPConn: %q", got, want)
			}
			server, client = tcpPair(t)
			if got := tc.run(t, &loopConn{New(server)}, server, client); got != want {
				t.Errorf("Sock's Loop and ReadNow: %q, net.TCPConn: %q", got, want)
			}
			t.Logf("all: %s", want)
		})
	}
}

// TestSockAllocs checks that a read and a write allocate nothing.
func TestSockAllocs(t *testing.T) {
	server, client := tcpPair(t)
	rs := New(server)
	if rs == nil {
		t.Fatal("no raw socket")
	}
	out, in := []byte("x"), make([]byte, 1)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := rs.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, in); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Read(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per write and read, want 0", allocs)
	}
}

// TestLoopMissesNothing runs an echo server in one Loop that, as the
// PoP's serving loop does, waits without reading after a short read: the
// client sends lines of random length, each after the echo of the one
// before (a keep-alive client), or all at once (pipelined), through a read
// buffer smaller than some lines. Every line comes back; a wake-up the
// loop missed would hang the client until its deadline.
func TestLoopMissesNothing(t *testing.T) {
	for _, pipelined := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipelined=%v", pipelined), func(t *testing.T) {
			server, client := tcpPair(t)
			rs := New(server)
			client.SetDeadline(time.Now().Add(20 * time.Second))
			var lines []string
			for i := range 300 {
				lines = append(lines, strings.Repeat(string(rune('a'+i%26)), 1+(i*7919)%23)+"\n")
			}
			buf := make([]byte, 8)
			var pending, reads, blocked int
			steps := 0
			loopErr := make(chan error, 1)
			go func() {
				loopErr <- rs.Loop(func() bool {
					steps++
					if !rs.InStep() {
						t.Error("InStep false inside a step")
					}
					for {
						n, err := rs.ReadNow(buf)
						if err == ErrWouldBlock {
							blocked++
							return false
						}
						if err != nil {
							if err != io.EOF {
								t.Errorf("ReadNow: %v", err)
							}
							return true
						}
						reads++
						if _, err := server.Write(buf[:n]); err != nil {
							return true
						}
						pending += n
						if n < len(buf) {
							return false // drained: wait without reading
						}
					}
				})
			}()
			br := bufio.NewReader(client)
			if pipelined {
				go io.WriteString(client, strings.Join(lines, ""))
			}
			for i, line := range lines {
				if !pipelined {
					io.WriteString(client, line)
				}
				got, err := br.ReadString('\n')
				if err != nil || got != line {
					t.Fatalf("line %d: %q, %v; want %q", i, got, err, line)
				}
			}
			client.CloseWrite()
			if err := <-loopErr; err != nil {
				t.Fatalf("Loop: %v", err)
			}
			if rs.InStep() {
				t.Error("InStep true after Loop")
			}
			t.Logf("%d steps, %d reads, %d would block", steps, reads, blocked)
		})
	}
}

// TestLoopEnds checks how a waiting Loop ends: at its read deadline, and
// when another goroutine closes the connection.
func TestLoopEnds(t *testing.T) {
	tests := []struct {
		name string
		end  func(server *net.TCPConn)
		want string
	}{
		{"the read deadline", func(server *net.TCPConn) { server.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) }, "read: deadline"},
		{"closed meanwhile", func(server *net.TCPConn) { go server.Close() }, "read: closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, _ := tcpPair(t)
			rs := New(server)
			done := make(chan error, 1)
			go func() {
				done <- rs.Loop(func() bool {
					_, err := rs.ReadNow(make([]byte, 8))
					return err != ErrWouldBlock
				})
			}()
			tt.end(server)
			select {
			case err := <-done:
				if got := errClass(err); got != tt.want {
					t.Errorf("Loop: %s, want %s", got, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Loop did not end")
			}
		})
	}
	t.Run("ReadNow outside Loop", func(t *testing.T) {
		server, _ := tcpPair(t)
		defer func() {
			if recover() == nil {
				t.Error("ReadNow outside Loop did not panic")
			}
		}()
		New(server).ReadNow(make([]byte, 1))
	})
}
