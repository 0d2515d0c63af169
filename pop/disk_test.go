package pop

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/config"
)

// diskOrigin answers every path with a cacheable body derived from it,
// tagged with the path's first segment.
func diskOrigin(t *testing.T) *testOrigin {
	return newTestOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		seg := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0]
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Surrogate-Key", "tag-"+seg)
		w.Write(diskBody(r.URL.Path))
	})
}

// diskBody is the body the origin sends for path: 40 KiB, so it is kept
// in a blob and sent with sendfile from memory and from disk alike.
func diskBody(path string) []byte {
	return bytes.Repeat([]byte(path+"|"), 40<<10/(len(path)+1)+1)[:40<<10]
}

// startDiskPoP starts a PoP with one cache directory, dir, that writes
// every cacheable response (min_uses 1).
func startDiskPoP(t *testing.T, originURL, dir string) *testPoP {
	t.Helper()
	tp, _ := startTunedPoP(t, fmt.Sprintf(testConfig, originURL, "0s"), func(p *config.POP) {
		p.Disk = []config.Disk{{Path: dir, Size: 64 << 20, MinUses: 1}}
	})
	return tp
}

// onDisk waits until the PoP's disk tier holds n entries.
func (tp *testPoP) waitOnDisk(t *testing.T, n int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d entries on disk", n), func() bool {
		return tp.disk.disks[0].Stats().Items >= n
	})
}

// TestDiskWarmRestart checks that a PoP restarted on its cache directory
// serves what it stored before from disk, at once, without asking the
// origin, with Cache-Status saying the disk answered, over net/http and
// over the fast path.
func TestDiskWarmRestart(t *testing.T) {
	o := diskOrigin(t)
	dir := t.TempDir()
	paths := []string{"/a/1", "/a/2", "/b/1"}
	dir = filepath.Join(dir, "not", "made", "yet") // created by the PoP
	first := startDiskPoP(t, o.URL, dir)
	for _, p := range paths {
		if resp, body := first.get(t, p); resp.StatusCode != 200 || !bytes.Equal(body, diskBody(p)) {
			t.Fatalf("fill %s: %d, %d bytes", p, resp.StatusCode, len(body))
		}
	}
	first.waitOnDisk(t, int64(len(paths)))
	first.stop(t)
	first.Close()

	second := startDiskPoP(t, o.URL, dir)
	for _, p := range paths {
		resp, body := second.get(t, p)
		if resp.StatusCode != 200 || !bytes.Equal(body, diskBody(p)) {
			t.Errorf("after restart %s: %d, %d bytes", p, resp.StatusCode, len(body))
		}
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
			t.Errorf("after restart %s: Cache-Status %q, want a hit", p, cs)
		}
		if o.count(p) != 1 {
			t.Errorf("%s reached the origin %d times, want 1 (the first PoP's fill)", p, o.count(p))
		}
	}
	// The first request of each path found it on disk.
	if st := second.disk.store.Tiers(); st.DiskHits < uint64(len(paths)) {
		t.Errorf("disk hits %d, want at least %d", st.DiskHits, len(paths))
	}

	// A third PoP, asked over one raw HTTP/1.1 connection: the fast path
	// answers from the disk copy, and says so.
	third := func() *testPoP { second.stop(t); second.Close(); return startDiskPoP(t, o.URL, dir) }()
	// Once its loader is done: while it runs, a Get racing the loader for
	// the same file may miss once (and net/http answers the retry), which
	// is fine for a PoP but not for counting fast-path hits.
	waitFor(t, "the disk loaded", func() bool { return third.disk.disks[0].Load().Done })
	c, err := net.Dial("tcp", strings.TrimPrefix(third.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "GET /b/1 HTTP/1.1\r\nHost: demo.example\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(body, diskBody("/b/1")) {
		t.Errorf("fast path from disk: %d bytes, want the stored body", len(body))
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=disk") {
		t.Errorf("fast path from disk: Cache-Status %q, want detail=disk", cs)
	}
	// The fast path counts a hit once it has sent it, so the client may
	// read it all before the count moves.
	waitFor(t, "the fast path to count the disk hit", func() bool { return third.fastHits.Load() > 0 })
}

// TestDiskPurgeSurvivesRestart checks that an object purged before a
// restart, by URL, prefix or tag, hard or soft, never comes back from disk
// after it, while the others do.
func TestDiskPurgeSurvivesRestart(t *testing.T) {
	tests := []struct {
		name    string
		purge   string
		gone    []string
		staying []string
	}{
		{"url", `{"url":"http://demo.example/a/1"}`, []string{"/a/1"}, []string{"/a/2", "/b/1"}},
		{"prefix", `{"prefix":"http://demo.example/a/"}`, []string{"/a/1", "/a/2"}, []string{"/b/1"}},
		{"tag", `{"tag":"tag-b"}`, []string{"/b/1"}, []string{"/a/1", "/a/2"}},
		{"soft url", `{"url":"http://demo.example/a/2","soft":true}`, []string{"/a/2"}, []string{"/a/1", "/b/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := diskOrigin(t)
			dir := t.TempDir()
			first := startDiskPoP(t, o.URL, dir)
			for _, p := range append(append([]string{}, tt.gone...), tt.staying...) {
				first.get(t, p)
			}
			first.waitOnDisk(t, int64(len(tt.gone)+len(tt.staying)))
			if code, res, raw := first.purge(t, "s3cret", tt.purge); code != 200 || res.Purged == 0 {
				t.Fatalf("purge: %d %s", code, raw)
			}
			first.stop(t)
			first.Close()

			second := startDiskPoP(t, o.URL, dir)
			for _, p := range tt.staying {
				before := o.count(p)
				second.get(t, p)
				if o.count(p) != before {
					t.Errorf("%s, not purged, was fetched again after the restart", p)
				}
			}
			for _, p := range tt.gone {
				before := o.count(p)
				resp, _ := second.get(t, p)
				if o.count(p) != before+1 {
					t.Errorf("%s, purged before the restart, was served from disk (Cache-Status %q)", p, resp.Header.Get("Cache-Status"))
				}
			}
		})
	}
}

// TestDiskMetrics checks that a PoP with a disk tier reports it in
// /metrics, and one without does not.
func TestDiskMetrics(t *testing.T) {
	o := diskOrigin(t)
	tp := startDiskPoP(t, o.URL, t.TempDir())
	tp.get(t, "/a/1")
	tp.waitOnDisk(t, 1)
	resp, err := tp.client.Get(tp.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`outpost_cache_tier_lookups_total{tier="disk"}`,
		`outpost_disk_items{path="`,
		`outpost_disk_writes_total{path="`,
		`outpost_disk_healthy{path="`,
		`outpost_disk_configured_bytes{path="`,
		`outpost_disk_capacity_changes_total{direction="lowered"`,
		`outpost_disk_capacity_changes_total{direction="raised"`,
		`outpost_disk_load_done{path="`,
		`outpost_disk_errors_total{kind="corrupt"`,
		`outpost_disk_open_files `,
		`outpost_disk_write_seconds_bucket{path="`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	plain := startPoP(t, o.URL)
	resp, err = plain.client.Get(plain.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "outpost_disk_") {
		t.Error("a PoP without disks reports disk metrics")
	}
}

// TestDiskSlicesSurviveRestart checks that the slices of a large object
// go to disk like any entry, and a restarted PoP serves a range of it
// from them without asking the origin.
func TestDiskSlicesSurviveRestart(t *testing.T) {
	o := newRangeOrigin(t)
	dir := t.TempDir()
	start := func() *testPoP {
		tp, _ := startTunedPoP(t, sliceConfig(o.URL), func(p *config.POP) {
			p.Disk = []config.Disk{{Path: dir, Size: 64 << 20, MinUses: 1}}
		})
		return tp
	}
	const path = "/obj/300000" // five 64 KiB slices
	want := objectBody(300000, 0)
	first := start()
	if resp, body := first.get(t, path); resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("fill: %d, %d bytes", resp.StatusCode, len(body))
	}
	first.idle(t)
	// The object's header and its five slices.
	first.waitOnDisk(t, 6)
	first.stop(t)
	first.Close()

	second := start()
	before := o.requests.Load()
	resp, body := second.do(t, http.MethodGet, path, "demo.example", http.Header{"Range": {"bytes=100000-200000"}})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[100000:200001]) {
		t.Fatalf("range after restart: %d, %d bytes", resp.StatusCode, len(body))
	}
	if n := o.requests.Load() - before; n != 0 {
		t.Errorf("the restarted PoP asked the origin %d times for slices it had on disk", n)
	}
}

// TestDiskMinUsesOnePerRequest checks that a request counts one use for
// the disk's min_uses, however many times the PoP looks its key up (the
// fast path, then net/http, on a miss): on a full directory with min_uses
// 2, an object's first request is not written, its second is.
func TestDiskMinUsesOnePerRequest(t *testing.T) {
	o := diskOrigin(t)
	tp, _ := startTunedPoP(t, fmt.Sprintf(testConfig, o.URL, "0s"), func(p *config.POP) {
		// Room for one 40 KiB file (12 blocks of 4 KiB), written while
		// the directory has room; after it, min_uses applies.
		p.Disk = []config.Disk{{Path: t.TempDir(), Size: 48 << 10, MinUses: 2}}
	})
	d := tp.disk.disks[0]
	waitFor(t, "the index loaded", func() bool { return d.Load().Done })
	tp.get(t, "/a/filler")
	tp.waitOnDisk(t, 1)
	if st := d.DiskStats(); st.FreeAdmissions != 1 {
		t.Fatalf("the filler was not written into free room: %+v", st.StoreStats)
	}
	tp.get(t, "/a/once")
	waitFor(t, "the fill offered to the disk", func() bool { st := d.Stats(); return st.Admissions+st.Rejections >= 2 })
	if st := d.Stats(); st.Admissions != 1 || st.Rejections != 1 {
		t.Fatalf("after one request on a full directory: admissions %d, rejections %d; want 1, 1 (one use, not two)", st.Admissions, st.Rejections)
	}
	tp.get(t, "/a/once") // a memory hit (Touch) or a fill again: the second use either way
	waitFor(t, "the second fill written", func() bool { return d.Stats().Admissions == 2 })
}
