package kmstest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel stop kmsd if the test process dies without
// running its cleanups (a test timeout's panic, a kill).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
