// Command attack replays the hostile-traffic attacks of issue 16 against an
// Outpost binary and prints one markdown table row per attack, so the same
// run against the binary before the fixes and the one after gives the
// issue's closing table.
//
//	go run ./bench/attack -outpost /tmp/outpost-before,/tmp/outpost-after
//
// Every attack starts its own origin (an HTTP server inside this program on
// 127.0.0.1:0 that behaves as the attack needs), writes a CDN file for one
// PoP (cache_size 64MiB, max_object 64MiB unless the attack needs less,
// listen and admin on free loopback ports, no purge section), starts
// `BINARY pop --config FILE`, runs the attack, measures, and kills the PoP
// by its PID. The file uses only keys that both the binary before the fixes
// and the one after accept. What is measured: the PoP's peak RSS (VmHWM in
// /proc/PID/status) and its RSS at the end, the largest total size of its
// memory files (memfd bodies are page cache, outside RSS unless mapped), its
// goroutines (go_goroutines on the admin listener's /metrics), its CPU time
// (utime+stime in /proc/PID/stat, counted in ticks of 10 ms), the origin's
// requests and bytes written, and what the users received.
//
// The attacks, numbered as in the closing table:
//
//  1. 304 leak: a no-cache page with an ETag is stored. User A's request
//     revalidates it; the origin holds its 304 (which carries
//     Set-Cookie: session=<the X-User of the request it answers>) for
//     500 ms, and users B, C and D arrive meanwhile, so they are collapsed
//     onto A's fill. Reported: the cookie each of B, C, D received.
//  2. Accept-Encoding poisoning: the origin negotiates as Caddy's encode
//     does (zstd, br, gzip, deflate: the client's highest weight, ties to
//     that order) and sends Vary: Accept-Encoding. Chrome's
//     "gzip, deflate, br, zstd" asks first, then curl with none, then
//     Safari's "gzip, deflate, br". Reported: the Content-Encoding each got
//     and whether the client accepts it.
//  3. Large misses with stalled clients: (a) 10 distinct cacheable 60 MiB
//     objects with a Content-Length, each asked for by a raw TCP client
//     with a 4 KiB receive buffer that never reads; (b) one cacheable
//     400 MiB chunked body asked for by two such clients. After 10 s:
//     the PoP's memory and the bytes the origin sent.
//  4. Silent fills: 20 distinct objects whose origin announces
//     Content-Length 60 MiB and then sends nothing: the PoP's memory.
//  5. Aborted requests: 2000 requests for distinct cacheable 1 MiB objects,
//     each connection reset (SO_LINGER 0) right after the request is sent.
//     Reported: origin fetches started and completed (body fully written),
//     the most at once, how long the origin stayed busy after the last
//     reset, the PoP's peak RSS and goroutines, and its
//     outpost_pop_detached_fills_refused_total when it has one. (b) repeats it
//     with HTTP/1.0 requests, which the PoP's fast path hands to net/http
//     for good rather than lending it one request: net/http then reads the
//     connection in the background and sees the reset.
//  6. Malformed bodies: 10 POSTs with a bad chunk size, then a GET.
//     Reported: the statuses, and whether the GET reached the origin.
//  7. Path prefix: the origin server URL is http://127.0.0.1:PORT/public;
//     a raw `GET /../secret`. Reported: the path the origin saw.
//  8. Uncacheable serialisation: a private page from a 1 s origin; one
//     request, then 5 at once. Reported: p50 and slowest of the five.
//  9. Range above max_object (1MiB here): a 4 MiB object asked for with
//     Range: bytes=0-9. Reported: status, body length, origin bytes.
//  10. Many ranges: 4,500 one-byte ranges on a stored 1 MiB object, 10
//     times. Reported: status, body length and the PoP's CPU per request.
//  11. A client that never reads a stored 32 MiB object: whether the PoP
//     still holds the connection after -stallwait, seen from the PoP's end
//     in /proc/net/tcp (ESTABLISHED: held; FIN_WAIT1 or gone: closed), and
//     the PoP's outpost_pop_send_timeouts_total when it has one. After the
//     fixes the send timeout defaults to 60 s; -stallwait (15 s by default)
//     must be longer to see it act. (b) repeats it in HTTP/1.0, which the
//     fast path leaves to net/http.
//
// -only 3,5 runs only the attacks with those numbers (3a and 3b for 3).
//
// Linux only (it reads /proc). It needs a few GiB of free memory: the binary
// before the fixes grows past 1.8 GB in attack 3.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// An attack runs against one binary and describes the outcome in one cell.
type attack struct {
	name string
	run  func(bin string) (string, error)
}

var stallWait = flag.Duration("stallwait", 15*time.Second, "how long attack 11's client stalls before the connection is checked")

func main() {
	bins := flag.String("outpost", "", "Outpost binaries to attack, comma-separated; each is a column")
	only := flag.String("only", "", "attack numbers to run, comma-separated (default: all)")
	flag.Parse()
	if *bins == "" {
		fmt.Fprintln(os.Stderr, "usage: attack -outpost BINARY[,BINARY...] [-only 1,3]")
		os.Exit(2)
	}
	attacks := []attack{
		{"1. 304 leak: what B, C, D got while A revalidated", attack304Leak},
		{"2. Accept-Encoding: Chrome, then curl (none), then Safari", attackAcceptEncoding},
		{"3a. 10 × 60 MiB misses, 10 stalled clients, 10 s", attackStalledMisses},
		{"3b. 400 MiB chunked, 2 stalled clients, 10 s", attackStalledChunked},
		{"4. 20 silent fills announcing 60 MiB", attackSilentFills},
		{"5a. 2000 requests for 1 MiB objects, reset at once", attackAborted},
		{"5b. the same in HTTP/1.0", attackAbortedHTTP10},
		{"6. 10 POSTs with a bad chunk size, then a GET", attackMalformedBody},
		{"7. GET /../secret, origin prefix /public", attackPathPrefix},
		{"8. private page, 1 s origin: 1 then 5 at once", attackUncacheable},
		{"9. Range: bytes=0-9 on 4 MiB, max_object 1MiB", attackRangeAboveMax},
		{"10. 4,500 one-byte ranges on a stored 1 MiB object", attackManyRanges},
		{"11a. client never reads a stored 32 MiB object", attackNeverReads},
		{"11b. the same in HTTP/1.0", attackNeverReadsHTTP10},
	}
	selected := map[int]bool{}
	for _, s := range strings.Split(*only, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			selected[n] = true
		}
	}
	binaries := strings.Split(*bins, ",")
	header, rule := "| attack |", "|---|"
	for _, b := range binaries {
		header += " " + strings.TrimPrefix(filepath.Base(b), "outpost-") + " |"
		rule += "---|"
	}
	fmt.Println(header)
	fmt.Println(rule)
	for _, a := range attacks {
		if len(selected) > 0 && !selected[attackNumber(a.name)] {
			continue
		}
		row := "| " + a.name + " |"
		for _, b := range binaries {
			cell, err := a.run(b)
			if err != nil {
				cell = "not measured: " + err.Error()
			}
			row += " " + strings.ReplaceAll(cell, "|", "/") + " |"
		}
		fmt.Println(row)
	}
}

// attackNumber is the number an attack's name starts with ("3a." is 3).
func attackNumber(name string) int {
	digits := strings.TrimRightFunc(strings.SplitN(name, ".", 2)[0], func(r rune) bool { return r < '0' || r > '9' })
	n, _ := strconv.Atoi(digits)
	return n
}

// procStatusKiB reads a "Key: N kB" line of /proc/PID/status.
func procStatusKiB(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// cpuTime is the process's utime+stime from /proc/PID/stat (ticks of 10 ms,
// USER_HZ being 100 on Linux).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses; utime and
	// stime are fields 14 and 15 of the line, 12 and 13 after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// memfdBytes is the total size of the memory files the process holds open.
func memfdBytes(pid int) int64 {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if link, err := os.Readlink(p); err != nil || !strings.HasPrefix(link, "/memfd:") {
			continue
		}
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	return total
}

func mib(n int64) string {
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}
