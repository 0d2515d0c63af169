// Package rawsock reads and writes a TCP connection with raw system calls
// (syscall.RawSyscall) through the runtime's network poller, instead of
// net.Conn's Read and Write, which tell the scheduler about each call
// (entersyscall). The socket is non-blocking, so the calls never block
// (the poller waits when they would), and telling the scheduler buys
// nothing; it costs a lot: the runtime's monitor thread (sysmon) sleeps
// deeply while the process is idle, the next call made through the
// scheduler wakes it, and it then checks every 20 µs for at least a
// millisecond. A server below full load is idle and busy by turns, and so
// paid thousands of wake-ups a second, each two context switches: a
// quarter of the PoP's CPU time on the disk-hit benchmark. With raw calls
// on the hit path (the PoP's fast path through this package, and
// cache/blob's sendfile) the monitor stays asleep (docs/storage.md has the
// measurements).
//
// Reads and writes each go through one callback made once per connection,
// with their arguments in the struct under a mutex, so that a call
// allocates nothing. Errors are wrapped as net.Conn's are (*net.OpError
// around *os.SyscallError or the poller's error), so callers see the same
// errors either way. Linux only: elsewhere New returns nil and callers use
// the connection's own Read and Write.
package rawsock
