package diskstore

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestPolicyTraceFile replays a trace through the eviction policy alone
// at 10% of the trace's footprint, counting each object by its exact size,
// then by what its file costs (header, about metaBytes of metadata, the
// body, rounded up to 4 KiB blocks), and logs both byte hit ratios: how
// much the store's block accounting costs against a simulator that counts
// exact bytes. It checks that replayCosts with each object's exact size
// as its cost is replayS3FIFO (the two replays are the same policy). The
// trace is a generated Zipf one, or an `outpost bench -trace` file (every
// URL with ?size=N, as bench/disk-tier.sh's traces) named by
// DISKSTORE_TRACE:
//
//	DISKSTORE_TRACE=/tmp/outpost-disk-X/trace.zipf0.9.txt go test -run TraceFile -v ./cache/diskstore
func TestPolicyTraceFile(t *testing.T) {
	const metaBytes = 600
	name, tr := "zipf0.9, 5,000 objects, 50,000 requests", zipfTrace(5000, 50000, 0.9, 7)
	if path := os.Getenv("DISKSTORE_TRACE"); path != "" {
		name, tr = path, readTraceFile(t, path)
	}
	capacity := tr.total / 10
	bhrExact := replayS3FIFO(tr, capacity, 1)
	if same := replayCosts(tr, tr.sizes, capacity); same != bhrExact {
		t.Errorf("replayCosts with exact costs: BHR %.4f, replayS3FIFO %.4f: the replays differ", same, bhrExact)
	}
	files := make([]int64, len(tr.sizes))
	for i, n := range tr.sizes {
		files[i] = blocks(headerSize + metaBytes + n)
	}
	bhrFiles := replayCosts(tr, files, capacity)
	t.Logf("%s: %d requests, %d objects, footprint %d MiB; S3-FIFO at 10%%: BHR %.2f%% counting exact bytes, %.2f%% counting files in blocks (they take %.1f%% more room)",
		name, len(tr.keys), len(tr.sizes), tr.total>>20, 100*bhrExact, 100*bhrFiles, 100*(float64(sum(files))/float64(tr.total)-1))
}

// readTraceFile reads an `outpost bench -trace` file: a key per distinct
// URL, its size from the URL's size=N.
func readTraceFile(t *testing.T, path string) trace {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sizeRE := regexp.MustCompile(`size=(\d+)`)
	ids := map[string]int{}
	var tr trace
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		u := fields[len(fields)-1]
		id, ok := ids[u]
		if !ok {
			m := sizeRE.FindStringSubmatch(u)
			if m == nil {
				t.Fatalf("no size in %q", u)
			}
			n, _ := strconv.ParseInt(m[1], 10, 64)
			id = len(tr.sizes)
			ids[u] = id
			tr.sizes = append(tr.sizes, n)
			tr.total += n
		}
		tr.keys = append(tr.keys, id)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return tr
}

func sum(xs []int64) (s int64) {
	for _, x := range xs {
		s += x
	}
	return s
}

// replayCosts is replayS3FIFO with each key taking costs[k] of the
// capacity while its hits count tr.sizes[k] bytes.
func replayCosts(tr trace, costs []int64, capacity int64) float64 {
	p := newPolicy(capacity)
	nodes := make(map[int]*node)
	keyOf := make(map[*node]int)
	var hit, all int64
	var victims []*node
	for _, k := range tr.keys {
		all += tr.sizes[k]
		if n, ok := nodes[k]; ok {
			hit += tr.sizes[k]
			n.hit()
			continue
		}
		n := &node{size: costs[k], hash: uint64(k) * 0x9E3779B97F4A7C15}
		nodes[k] = n
		keyOf[n] = k
		victims = p.add(n, 0, victims[:0])
		for _, v := range victims {
			delete(nodes, keyOf[v])
			delete(keyOf, v)
		}
	}
	return float64(hit) / float64(all)
}
