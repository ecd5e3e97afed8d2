//go:build linux

package volatile

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const helperEnv = "KIR_VOLATILE_HELPER_PIDS"

// TestHelperScan is not a test: TestCapabilities runs the test binary
// through setpriv with a reduced capability set, and this prints what
// the scan saw of the PIDs in helperEnv.
func TestHelperScan(t *testing.T) {
	list := os.Getenv(helperEnv)
	if list == "" {
		t.Skip("a helper of TestCapabilities")
	}
	var pids []int
	for _, s := range strings.Split(list, ",") {
		n, _ := strconv.Atoi(s)
		pids = append(pids, n)
	}
	procs, err := scan(t.Context(), "/proc", func(pid int, _ []byte) bool { return slices.Contains(pids, pid) }, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(procs)
	fmt.Printf("RESULT:%s\n", b)
}

// TestCapabilities scans a process of another user (4242) with the
// capabilities the node agent is given, and with one less each time: what
// the package documentation says the agent needs is what it needs.
func TestCapabilities(t *testing.T) {
	needRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux): ", err)
	}
	cmd := &exec.Cmd{Path: "/bin/sleep", Args: []string{"sleep", "1000"}, Dir: "/",
		SysProcAttr: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4343}}}
	start(t, nil, cmd)
	pid := cmd.Process.Pid
	for _, tc := range []struct {
		caps       string
		wantErrors []string // the fields that cannot be read
	}{
		{"+net_admin,+sys_admin,+sys_ptrace,+dac_read_search", nil},
		{"+net_admin,+sys_admin,+sys_ptrace", []string{"fd"}},
		{"+net_admin,+sys_admin,+dac_read_search", []string{"exe", "cwd", "fd"}},
	} {
		c := exec.Command(setpriv, "--inh-caps=-all,"+tc.caps, "--ambient-caps=-all,"+tc.caps, "--bounding-set=-all,"+tc.caps,
			"--", os.Args[0], "-test.run=^TestHelperScan$", "-test.v")
		c.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(pid))
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.caps, err, out)
		}
		_, res, ok := strings.Cut(string(out), "RESULT:")
		var procs []Process
		if !ok || json.Unmarshal([]byte(strings.SplitN(res, "\n", 2)[0]), &procs) != nil || len(procs) != 1 {
			t.Fatalf("%s: no result for process %d:\n%s", tc.caps, pid, out)
		}
		var got []string
		for _, e := range procs[0].Errors {
			field, _, _ := strings.Cut(e, ":")
			got = append(got, field)
		}
		if !slices.Equal(got, tc.wantErrors) {
			t.Errorf("with %s: errors %q; want errors for %q", tc.caps, procs[0].Errors, tc.wantErrors)
		}
		if p := procs[0]; p.UID != 4242 || p.PPID != os.Getpid() || p.Cmdline[0] != "/bin/sleep" {
			t.Errorf("with %s: uid %d ppid %d cmdline %q; want 4242 %d /bin/sleep (status, stat and cmdline need nothing)", tc.caps, p.UID, p.PPID, p.Cmdline, os.Getpid())
		}
	}
}
