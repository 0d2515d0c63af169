// Package sdnotify tells systemd how a service is doing, over the
// datagram socket systemd names in $NOTIFY_SOCKET (sd_notify(3)): READY=1
// once it serves, so a unit of Type=notify is "started" only then and
// units ordered after it wait; WATCHDOG=1 at half the unit's WatchdogSec,
// so systemd restarts a process that hangs; STOPPING=1 when it drains;
// RELOADING=1 with MONOTONIC_USEC while it reloads. Without $NOTIFY_SOCKET
// (not under systemd, or Type=exec) every call does nothing, so callers
// need not ask. It is a few lines, as the protocol is: one datagram per
// state.
package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The states a service sends.
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
	Reloading = "RELOADING=1"
)

// Notify sends state (one or more "KEY=value" lines) to the socket in
// $NOTIFY_SOCKET. It returns false, nil when there is none.
func Notify(state string) (bool, error) {
	return notify(os.Getenv("NOTIFY_SOCKET"), state)
}

func notify(socket, state string) (bool, error) {
	if socket == "" {
		return false, nil
	}
	if socket[0] == '@' { // an abstract socket
		socket = "\x00" + socket[1:]
	} else if socket[0] != '/' {
		return false, errors.New("sdnotify: NOTIFY_SOCKET is neither a path nor an abstract socket")
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

// ReloadingNow is the state to send when a reload starts: RELOADING=1 with
// the monotonic clock, as Type=notify-reload wants; send Ready after it.
func ReloadingNow() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return Reloading
	}
	usec := ts.Sec*1_000_000 + ts.Nsec/1_000
	return Reloading + "\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10)
}

// WatchdogInterval is how often the unit wants WATCHDOG=1: half its
// WatchdogSec, from $WATCHDOG_USEC, when $WATCHDOG_PID is unset or this
// process; 0 when it has no watchdog.
func WatchdogInterval() time.Duration {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogInterval(usec, pid string, self int) time.Duration {
	if usec == "" {
		return 0
	}
	if pid != "" {
		if p, err := strconv.Atoi(pid); err != nil || p != self {
			return 0
		}
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Microsecond / 2
}

// RunWatchdog sends WATCHDOG=1 every WatchdogInterval while alive reports
// true, until ctx is done. alive is the service's own health (a PoP: its
// admin listener answers); when it reports false the keep-alive stops and
// systemd, after WatchdogSec, restarts the service. Without a watchdog it
// returns at once.
func RunWatchdog(ctx context.Context, alive func(context.Context) bool) {
	every := WatchdogInterval()
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive == nil || alive(ctx) {
				Notify(Watchdog)
			}
		}
	}
}
