//go:build !linux

package harness

import "os/exec"

// setPdeathsig does nothing outside Linux (no parent-death signal).
func setPdeathsig(*exec.Cmd) {}
