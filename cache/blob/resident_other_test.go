//go:build !linux

package blob

import "os"

func dropPages(*os.File) {}

func noRawSendfile() func() { return func() {} }
