package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one program the lab started in a namespace. `ip netns exec`
// execs the program in place, so the PID is the program's.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string        // the file that has its stdout and stderr
	done chan struct{} // closed when it has exited (nil when detached)
	err  error         // its exit status, after done
}

// start runs bin with args in the namespace ns, with env added to this
// process's environment and its output in the file logPath. Detached
// processes are in a session of their own and are not waited for: they
// outlive this program (`outpost netlab up`).
func start(name, ns, logPath string, detached bool, env []string, bin string, args ...string) (*process, error) {
	ipBin, err := ipPath()
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(ipBin, append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !detached, Setsid: detached}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netlab: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath}
	if !detached {
		p.done = make(chan struct{})
		go func() {
			p.err = cmd.Wait()
			close(p.done)
		}()
	}
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process and waits up to grace for it to end, then
// kills it. It returns the process's exit error if it did not end by sig.
func (p *process) stop(sig syscall.Signal, grace time.Duration) error {
	if p.done == nil {
		return syscall.Kill(p.cmd.Process.Pid, sig)
	}
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("netlab: %s did not end within %s of %s; killed", p.name, grace, sig)
}

// pidsIn returns the PIDs of the processes in the namespace ns.
func pidsIn(ns string) []int {
	out, err := ipOutput("netns", "pids", ns)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killIn ends the processes in the namespaces: SIGTERM, then SIGKILL for
// those still there after grace. Only the lab's own namespaces are given,
// so every process in them is one the lab started.
func killIn(namespaces []string, grace time.Duration) {
	signalAll := func(sig syscall.Signal) int {
		n := 0
		for _, ns := range namespaces {
			for _, pid := range pidsIn(ns) {
				if syscall.Kill(pid, sig) == nil {
					n++
				}
			}
		}
		return n
	}
	if signalAll(syscall.SIGTERM) == 0 {
		return
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !slices.ContainsFunc(namespaces, func(ns string) bool { return len(pidsIn(ns)) > 0 }) {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	signalAll(syscall.SIGKILL)
}

// stalePrefix matches the namespaces of test runs: olab-PID-host.
var stalePrefix = regexp.MustCompile(`^olab-([0-9]+)-`)

// SweepStale removes the namespaces of earlier runs whose process is gone
// (names olab-PID-…, see PrefixFor), with the processes left in them. A
// test run that was killed leaves its namespaces behind; the next run
// removes them.
func SweepStale() error {
	var stale []string
	for _, ns := range listNamespaces() {
		m := stalePrefix.FindStringSubmatch(ns)
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			stale = append(stale, ns)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	return removeNamespaces(stale, 2*time.Second)
}

// PrefixFor is the namespace prefix of a lab run by the process pid:
// "olab-PID-". SweepStale removes such namespaces once pid is gone.
func PrefixFor(pid int) string { return "olab-" + strconv.Itoa(pid) + "-" }
