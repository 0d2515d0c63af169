package pop

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/outpost-cdn/outpost/config"
)

// BenchmarkDiskHit measures hits answered from the disk tier over
// loopback, one keep-alive client, through the HTTP/1.1 fast path: a PoP
// with a memory tier of 1 MiB in front of a cache directory on tmpfs
// (/dev/shm when there is one, as bench/anchors.sh's disk test), objects
// of 100 KiB and 1 MiB asked in turn, so nearly every hit comes from its
// disk file (the page cache), as in the anchor's disk test. "memory" is
// the same objects answered from a memory tier large enough for all of
// them, for comparison. Besides ns/op and allocs/op it reports the
// process's system calls per request (syscalls/op: syscr + syscw of
// /proc/self/io, the client's read and write included) and the share of
// hits the disk answered (disk-share), and the process's CPU time per
// request (cpu-ns/op, steadier than ns/op on a busy machine). The client's work is in every
// figure: compare the variants with each other, in interleaved runs:
//
//	go test -run '^$' -bench DiskHit -benchmem -count 6 ./pop
func BenchmarkDiskHit(b *testing.B) {
	const objects = 200
	for _, tier := range []string{"disk", "memory"} {
		for _, size := range []int{100 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%dKiB", tier, size>>10), func(b *testing.B) {
				p, addr := startDiskBenchPoP(b, tier, size)
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				requests := make([]string, objects)
				for i := range requests {
					requests[i] = "GET /obj/" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: demo.example\r\n\r\n"
				}
				get := keepAliveGet(b, c, size, requests...)
				for range 2 * objects { // warm: every object asked twice on this connection
					get()
				}
				fastBefore, diskBefore := p.fastHits.Load(), p.disk.servedHits.Load()
				ds := p.disk.disks[0].DiskStats()
				_, opensBefore, _ := ds.ReadLatency.Snapshot()
				writesBefore, missesBefore := ds.Writes, p.disk.store.Tiers().Misses
				b.SetBytes(int64(size))
				b.ReportAllocs()
				before, ok := processSyscalls()
				stop := reportCPU(b)
				for b.Loop() {
					get()
				}
				stop()
				if after, ok2 := processSyscalls(); ok && ok2 {
					b.ReportMetric(float64(after-before)/float64(b.N), "syscalls/op")
				}
				// (The fast path may decline a rare request; net/http
				// answers it.)
				if fast := p.fastHits.Load() - fastBefore; fast < uint64(b.N)*99/100 {
					b.Fatalf("the fast path answered %d of %d requests", fast, b.N)
				}
				b.ReportMetric(float64(p.disk.servedHits.Load()-diskBefore)/float64(b.N), "disk-share")
				ds = p.disk.disks[0].DiskStats()
				_, opens, _ := ds.ReadLatency.Snapshot()
				b.ReportMetric(float64(opens-opensBefore)/float64(b.N), "opens/op")
				b.ReportMetric(float64(ds.Writes-writesBefore)/float64(b.N), "writes/op")
				b.ReportMetric(float64(p.disk.store.Tiers().Misses-missesBefore)/float64(b.N), "misses/op")
			})
		}
	}
}

// startDiskBenchPoP starts a PoP for BenchmarkDiskHit whose origin sends
// size bytes for every path, fills objects /obj/0.. on a connection of
// its own, and returns the PoP and its address. tier "disk" has a memory
// tier of 1 MiB and a cache directory (min_uses 1); "memory" a memory
// tier of 1 GiB and a directory it does not need.
func startDiskBenchPoP(b *testing.B, tier string, size int) (*PoP, string) {
	b.Helper()
	dir := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err = os.MkdirTemp("/dev/shm", "outpost-diskhit-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	mem := int64(1 << 20)
	if tier == "memory" {
		mem = 1 << 30
	}
	text := strings.Replace(benchConfig(b, size), "max_object: 1MiB", "max_object: 8MiB", 1)
	p := newBenchPoP(b, text, Options{}, func(pc *config.POP) {
		pc.CacheSize = mem
		pc.Disk = []config.Disk{{Path: dir, Size: 1 << 30, MinUses: 1}}
	})
	addr := serveBench(b, p)
	// The fills, on a connection of their own: a miss hands its
	// connection to net/http for good.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for i := range 200 {
		benchGet(b, client, "http://"+addr+"/obj/"+strconv.Itoa(i), false)
	}
	if tier == "disk" {
		waitFor(b, "every fill on the disk", func() bool {
			d := p.disk.disks[0].DiskStats()
			return d.Items >= 200 && d.QueuedWrites == 0
		})
	}
	return p, addr
}

// processCPU is the CPU time the process has used (user and system), in
// nanoseconds: on a busy machine it moves less than the time per request.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// processSyscalls is the number of read and write system calls the
// process has made (syscr + syscw in /proc/self/io); false where that
// file is missing.
func processSyscalls() (uint64, bool) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	var total uint64
	found := 0
	for line := range strings.Lines(string(data)) {
		for _, prefix := range []string{"syscr: ", "syscw: "} {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return 0, false
				}
				total += n
				found++
			}
		}
	}
	return total, found == 2
}
