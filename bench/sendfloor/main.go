// Command sendfloor is the floor under the PoP's disk hits: the least a Go
// program can spend to answer an HTTP/1.1 GET with a cached file. It
// answers every request on its connection with one of -n files of -size
// bytes on tmpfs (chosen by a hash of the request line), the head with
// write(2) and the body with sendfile(2) through the runtime's network
// poller, as raw system calls (-raw, the default), as the PoP's fast path
// does, and nothing else: no cache, no parsing beyond the head's end, no
// timeouts, no metrics.
//
// bench/sendfloor.sh puts it under the same load as bench/anchors.sh's disk
// test; what the PoP spends per hit above it is the PoP's own, and what
// nginx spends below it is what the Go runtime costs (docs/storage.md).
// It is a measuring tool, not a server: it trusts its clients.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"unsafe"

	"github.com/outpost-cdn/outpost/rawsock"
)

// raw: see the -raw flag.
var raw bool

func main() {
	addr := flag.String("addr", "127.0.0.1:18700", "listen address")
	n := flag.Int("n", 2000, "files")
	size := flag.Int("size", 1<<20, "bytes per file")
	dir := flag.String("dir", "/dev/shm", "where the files go (a temporary directory in it, removed at exit)")
	offset := flag.Int("offset", 0, "bytes before the body in each file (a cache file's header and metadata)")
	flag.BoolVar(&raw, "raw", true, "make the socket's read, write and sendfile calls without telling the Go scheduler (RawSyscall), as the PoP's fast path does; -raw=false shows what telling it costs")
	flag.Parse()
	tmp, err := os.MkdirTemp(*dir, "sendfloor")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	files, err := makeFiles(tmp, *n, *offset, *size)
	if err != nil {
		os.RemoveAll(tmp)
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		os.RemoveAll(tmp)
		log.Fatal(err)
	}
	// The files can be gigabytes of memory on tmpfs: remove them on
	// SIGINT and SIGTERM too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; ln.Close() }()
	fmt.Println("ready")
	head := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
		strconv.Itoa(*size) + "\r\n\r\n")
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serve(c.(*net.TCPConn), files, head, int64(*offset), int64(*size))
	}
}

// makeFiles writes n files of offset bytes and a body of size bytes into
// dir and opens them.
func makeFiles(dir string, n, offset, size int) ([]*os.File, error) {
	body := bytes.Repeat([]byte("x"), offset+size)
	files := make([]*os.File, n)
	for i := range files {
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(p, body, 0o644); err != nil {
			return nil, err
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		files[i] = f
	}
	return files, nil
}

// serve answers the requests on c until it closes.
func serve(c *net.TCPConn, files []*os.File, head []byte, offset, size int64) {
	defer c.Close()
	sock, err := c.SyscallConn()
	if err != nil {
		return
	}
	var rw io.ReadWriter = c
	if rs := rawsock.New(c); raw && rs != nil {
		rw = rs
	}
	br := bufio.NewReaderSize(rw, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		h := fnv.New32a()
		h.Write(line)
		for { // the rest of the head
			l, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(l) <= 2 {
				break
			}
		}
		if _, err := rw.Write(head); err != nil {
			return
		}
		if err := sendFile(sock, files[h.Sum32()%uint32(len(files))], offset, size); err != nil {
			return
		}
	}
}

// sendFile sends size bytes of f from offset to sock with sendfile(2),
// waiting in the runtime's poller when the socket is full.
func sendFile(sock syscall.RawConn, f *os.File, offset, size int64) error {
	off, end := offset, offset+size
	var sendErr error
	err := sock.Write(func(fd uintptr) bool {
		for off < end {
			n, err := sendfile(int(fd), int(f.Fd()), &off, int(end-off))
			switch {
			case err == syscall.EAGAIN:
				return false
			case err == syscall.EINTR:
				continue
			case err != nil:
				sendErr = err
				return true
			case n == 0:
				sendErr = fmt.Errorf("sendfile sent nothing at %d of %d", off-offset, size)
				return true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return sendErr
}

// sendfile is sendfile(2), through the scheduler or (-raw) not.
func sendfile(out, in int, off *int64, n int) (int, error) {
	if !raw {
		return syscall.Sendfile(out, in, off, n)
	}
	r, _, e := syscall.RawSyscall6(syscall.SYS_SENDFILE, uintptr(out), uintptr(in), uintptr(unsafe.Pointer(off)), uintptr(n), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
