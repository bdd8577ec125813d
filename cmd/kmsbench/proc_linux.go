package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel send SIGTERM to a child whose parent
// dies, so an interrupted kmsbench leaves no server behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
