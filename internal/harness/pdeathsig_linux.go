package harness

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel SIGKILL cmd when the test process dies, so
// a crashed or interrupted test leaves no server or consentsync behind.
func setPdeathsig(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
