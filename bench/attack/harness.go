package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// origin is an HTTP server inside this program that counts what it does.
type origin struct {
	srv  *http.Server
	addr string // host:port

	requests  atomic.Int64 // handlers entered
	completed atomic.Int64 // handlers that returned without a write error
	bytes     atomic.Int64 // body bytes written
	inFlight  atomic.Int64
	peak      atomic.Int64 // most handlers at once

	mu    sync.Mutex
	paths []string  // request targets as received, first 100
	users []string  // X-User fields received, first 100
	last  time.Time // when the last handler returned
}

// countingWriter counts body bytes and remembers a write error.
type countingWriter struct {
	http.ResponseWriter
	o   *origin
	err error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.o.bytes.Add(int64(n))
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// Flush lets handlers stream through the counting writer.
func (w *countingWriter) Flush() {
	if err := http.NewResponseController(w.ResponseWriter).Flush(); err != nil && w.err == nil {
		w.err = err
	}
}

func startOrigin(h http.HandlerFunc) (*origin, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	o := &origin{addr: ln.Addr().String()}
	o.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		n := o.inFlight.Add(1)
		defer o.inFlight.Add(-1)
		for p := o.peak.Load(); n > p && !o.peak.CompareAndSwap(p, n); p = o.peak.Load() {
		}
		o.mu.Lock()
		if len(o.paths) < 100 {
			o.paths = append(o.paths, r.RequestURI)
			user := r.Header.Get("X-User")
			if r.Header.Get("If-None-Match") != "" {
				user += "(conditional)"
			}
			o.users = append(o.users, user)
		}
		o.mu.Unlock()
		cw := &countingWriter{ResponseWriter: w, o: o}
		h(cw, r)
		o.mu.Lock()
		o.last = time.Now()
		o.mu.Unlock()
		if cw.err == nil && r.Context().Err() == nil {
			o.completed.Add(1)
		}
	})}
	go func() { _ = o.srv.Serve(ln) }()
	return o, nil
}

func (o *origin) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.paths...)
}

func (o *origin) seenUsers() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.users...)
}

func (o *origin) lastDone() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// pop is one Outpost PoP running as a child process.
type pop struct {
	cmd    *exec.Cmd
	pid    int
	listen string
	admin  string
	dir    string
}

// popConfig is the CDN file: only keys that the binaries before and after
// the fixes both accept.
const popConfig = `services:
  - name: attack
    hostnames: [127.0.0.1]
    origin:
      servers:
        - url: %s
    cache:
      max_object: %s
pops:
  - name: attack
    location: {lat: 50.08, lon: 14.43}
    listen: %s
    admin: %s
    cache_size: 64MiB
    drain: 0s
`

// freePort is a loopback address nothing listens on at the moment.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startPoP writes the CDN file and starts `bin pop --config FILE`, waiting
// until its admin listener answers.
func startPoP(bin, originURL, maxObject string) (*pop, error) {
	dir, err := os.MkdirTemp("", "outpost-attack-")
	if err != nil {
		return nil, err
	}
	p := &pop{dir: dir}
	if p.listen, err = freePort(); err != nil {
		return nil, err
	}
	if p.admin, err = freePort(); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "cdn.yaml")
	yaml := fmt.Sprintf(popConfig, originURL, maxObject, p.listen, p.admin)
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "pop.log"))
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "pop", "--config", file)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	logf.Close()
	p.pid = p.cmd.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := p.metric("go_goroutines"); err == nil {
			return p, nil
		}
	}
	p.stop()
	log, _ := os.ReadFile(filepath.Join(dir, "pop.log"))
	return nil, fmt.Errorf("pop did not start: %s", strings.TrimSpace(string(log)))
}

// stop kills the PoP by its PID and removes its directory.
func (p *pop) stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	_ = os.RemoveAll(p.dir)
}

// metric reads a metric from the admin listener's /metrics: the sum of its
// series when it has labels.
func (p *pop) metric(name string) (float64, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	sum, found := 0.0, false
	for s.Scan() {
		line := s.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (!strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "{")) {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, err
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("no metric %s", name)
	}
	return sum, nil
}

func (p *pop) peakRSS() int64 { return procStatusKiB(p.pid, "VmHWM") << 10 }
func (p *pop) rss() int64     { return procStatusKiB(p.pid, "VmRSS") << 10 }

// sampler watches a PoP's memory files and goroutines until stopped.
type sampler struct {
	stopc      chan struct{}
	done       chan struct{}
	memfd      int64
	goroutines int64
	heap       int64 // go_memstats_heap_inuse_bytes
}

func (p *pop) sample() *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			s.memfd = max(s.memfd, memfdBytes(p.pid))
			if g, err := p.metric("go_goroutines"); err == nil {
				s.goroutines = max(s.goroutines, int64(g))
			}
			if h, err := p.metric("go_memstats_heap_inuse_bytes"); err == nil {
				s.heap = max(s.heap, int64(h))
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() {
	close(s.stopc)
	<-s.done
}

// env is an origin and a PoP in front of it.
type env struct {
	o *origin
	p *pop
}

// setup starts an origin with handler h and a PoP for it; prefix is added
// to the origin server's URL.
func setup(bin string, h http.HandlerFunc, prefix, maxObject string) (*env, error) {
	o, err := startOrigin(h)
	if err != nil {
		return nil, err
	}
	p, err := startPoP(bin, "http://"+o.addr+prefix, maxObject)
	if err != nil {
		o.srv.Close()
		return nil, err
	}
	return &env{o: o, p: p}, nil
}

func (e *env) close() {
	e.p.stop()
	e.o.srv.Close()
}

func (e *env) url(path string) string { return "http://" + e.p.listen + path }

// client asks with no Accept-Encoding of its own, decodes nothing and opens
// a connection per request.
var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true},
}

// get sends a GET with the given header fields and reads the whole body.
func get(url string, fields ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(fields); i += 2 {
		req.Header.Set(fields[i], fields[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// dialSmall connects with a 4 KiB receive buffer, so a client that does not
// read stops the sender quickly.
func dialSmall(addr string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// stalled sends an HTTP/1.1 GET for path on its own connection and never
// reads.
func stalled(addr, path string) (*net.TCPConn, error) { return stalledProto(addr, path, "HTTP/1.1") }

func stalledProto(addr, path, proto string) (*net.TCPConn, error) {
	c, err := dialSmall(addr)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(c, "GET %s %s\r\nHost: 127.0.0.1\r\n\r\n", path, proto); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// rawStatus sends raw bytes on a new connection and returns the status code
// of the response (0 when the connection closed without one).
func rawStatus(addr, request string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := io.WriteString(c, request); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return 0, nil
		}
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("status line %q", line)
	}
	return strconv.Atoi(f[1])
}

// pattern is the body bytes origins write, 256 KiB at a time.
var pattern = func() []byte {
	b := make([]byte, 256<<10)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}()

// writeBody writes n bytes of pattern, flushing after each piece, and stops
// at the first error.
func writeBody(w http.ResponseWriter, n int64) {
	for n > 0 {
		p := pattern[:min(n, int64(len(pattern)))]
		if _, err := w.Write(p); err != nil {
			return
		}
		n -= int64(len(p))
	}
}

// tcpState is the state of the loopback connection from local to remote,
// from /proc/net/tcp: "ESTABLISHED", "FIN_WAIT1" (local closed, its unsent
// data still queued) and so on, or "gone".
func tcpState(local, remote *net.TCPAddr) string {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return "unknown"
	}
	l, r := fmt.Sprintf("0100007F:%04X", local.Port), fmt.Sprintf("0100007F:%04X", remote.Port)
	states := map[string]string{"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK"}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == l && f[2] == r {
			if s, ok := states[f[3]]; ok {
				return s
			}
			return f[3]
		}
	}
	return "gone"
}
