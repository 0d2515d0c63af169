package diskstore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// childEnv, when set to a directory, makes TestCrashDuringWrites the
// child that writes into it until it is killed.
const childEnv = "DISKSTORE_CRASH_CHILD"

// crashQueue is the child's write queue length.
const crashQueue = 64

// crashSize is the body size of key in the crash test: 0 to 300 KB,
// derived from the key.
func crashSize(key string) int {
	sum := sha256.Sum256([]byte(key))
	return int(sum[0])<<10 + int(sum[1])*4 + int(sum[2])%3*(1<<15)
}

// crashChild writes entries c<round>-<i> in a loop, Deleting every tenth
// one again, and prints each i it has Set; it runs until killed.
func crashChild(dir, round string) {
	s, err := Open(Options{Dir: dir, MaxBytes: 256 << 20, MinUses: 1, WriteQueue: crashQueue, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		key := fmt.Sprintf("c%s-%d", round, i)
		e := entryFor(key, crashSize(key))
		for {
			before := s.Stats().Drops
			s.Set(e, time.Hour)
			if s.Stats().Drops == before {
				break
			}
			time.Sleep(time.Millisecond) // the queue is full: let the writer catch up
		}
		if i%10 == 9 {
			s.Delete(key)
		}
		fmt.Fprintln(w, i)
		w.Flush()
	}
}

// TestCrashDuringWrites kills (SIGKILL) a child process that writes
// entries, at several points, and reopens its directory each time: every
// entry served has exactly its body, no file is torn (nothing is found
// corrupt), deleted entries stay deleted, and the store keeps working.
func TestCrashDuringWrites(t *testing.T) {
	if dir := os.Getenv(childEnv); dir != "" {
		crashChild(dir, os.Getenv(childEnv+"_ROUND"))
		return
	}
	dir := t.TempDir()
	var lasts []int
	kills := []int{1, 25, 60, 150, 7} // the Sets after which each round sends the kill (the child runs on until it lands)
	for round, after := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringWrites$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, childEnv+"_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		last := -1
		for last < after && sc.Scan() {
			n, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Fatalf("child: %s", sc.Text())
			}
			last = n
		}
		cmd.Process.Signal(syscall.SIGKILL)
		// The child goes on Setting until the signal lands (far beyond
		// after if this goroutine was descheduled): every number it
		// printed meanwhile is a Set it finished too. Read them all (the
		// pipe ends when the child dies), then wait for it.
		for sc.Scan() {
			if n, err := strconv.Atoi(sc.Text()); err == nil {
				last = max(last, n)
			}
		}
		cmd.Wait()
		if last < after {
			t.Fatalf("round %d: child died after %d entries", round, last)
		}

		lasts = append(lasts, last)
		s := openTest(t, Options{Dir: dir, MaxBytes: 256 << 20, MinUses: 1})
		loaded(t, s)
		served := 0
		for r := 0; r <= round; r++ {
			servedR := 0
			for i := 0; i <= lasts[r]+70; i++ { // what it had Set, and what it may have been writing
				key := fmt.Sprintf("c%d-%d", r, i)
				e, ok := s.Get(key)
				if !ok {
					continue
				}
				served++
				servedR++
				if i%10 == 9 && i < lasts[r] {
					t.Errorf("round %d: %s was deleted but is served", round, key)
				}
				if !bytes.Equal(readBody(t, e), bodyFor(key, crashSize(key))) {
					t.Fatalf("round %d: %s served with a wrong body", round, key)
				}
			}
			// The child's Set blocks (retries) while the queue is full, so
			// of the entries it had Set all but the queue's 64, the one in
			// the writer's hands and the deleted ones were on disk when it
			// was killed. Fewer means a published file was lost.
			sets := lasts[r] + 1
			if least := sets - crashQueue - 1 - (sets/10 + 1); servedR < least {
				t.Errorf("round %d: %d of round %d's %d entries served; at least %d were published", round, servedR, r, sets, least)
			}
		}
		st := s.DiskStats()
		if st.Corrupt != 0 {
			t.Errorf("round %d: %d corrupt files after kill -9", round, st.Corrupt)
		}
		if st.Items != int64(served+round) { // and one after-N per round before
			t.Errorf("round %d: %d entries indexed, %d served", round, st.Items, served)
		}
		if served == 0 && round == len(kills)-1 { // an early kill may find nothing written yet
			t.Errorf("round %d: nothing served after kill -9 in %d rounds", round, round+1)
		}
		if ents, _ := os.ReadDir(s.tmp); len(ents) != 0 {
			t.Errorf("round %d: %d leftovers in tmp", round, len(ents))
		}
		key := fmt.Sprintf("after-%d", round)
		s.Set(entryFor(key, 1000), time.Hour)
		settle(t, s)
		if e, ok := s.Get(key); !ok || !bytes.Equal(readBody(t, e), bodyFor(key, 1000)) {
			t.Errorf("round %d: the reopened store does not write", round)
		}
		t.Logf("round %d: killed after %d Sets; %d entries served, load %+v", round, last+1, served, st.Load)
		s.Close()
	}
}
