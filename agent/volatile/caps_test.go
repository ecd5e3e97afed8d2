//go:build linux

package volatile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
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

// TestHelperNonDumpable is not a test: TestCapabilities runs it as a
// process that does what an implant can to hide from a root without
// CAP_SYS_PTRACE, making itself non-dumpable, then waits for its stdin to
// close.
func TestHelperNonDumpable(t *testing.T) {
	if os.Getenv(nonDumpableEnv) == "" {
		t.Skip("a helper of TestCapabilities")
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

const nonDumpableEnv = "KIR_VOLATILE_HELPER_NONDUMPABLE"

// TestCapabilities scans, with the capabilities the node agent is given and
// with one less each time, a process of another user (4242), root processes
// with and without capabilities, and a root process without capabilities
// that made itself non-dumpable: what the package documentation says the
// agent needs is what it needs.
func TestCapabilities(t *testing.T) {
	needRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux): ", err)
	}
	noCaps := []string{setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"}
	other := &exec.Cmd{Path: "/bin/sleep", Args: []string{"/bin/sleep", "1000"}, Dir: "/",
		SysProcAttr: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4343}}}
	start(t, nil, other)
	rootful := &exec.Cmd{Path: "/bin/sleep", Args: []string{"/bin/sleep", "1001"}, Dir: "/"}
	start(t, nil, rootful)
	plain := &exec.Cmd{Path: setpriv, Args: append(slices.Clone(noCaps), "/bin/sleep", "1002"), Dir: "/"}
	start(t, nil, plain)
	hidden := &exec.Cmd{Path: setpriv, Args: append(slices.Clone(noCaps), os.Args[0], "-test.run=^TestHelperNonDumpable$"), Dir: "/",
		Env: append(os.Environ(), nonDumpableEnv+"=1")}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hidden.Stdout = w
	start(t, nil, hidden)
	w.Close()
	if line, _ := bufio.NewReader(r).ReadString('\n'); line != "ready\n" {
		t.Fatalf("the non-dumpable helper said %q; want ready", line)
	}
	poll(t, "setpriv to exec sleep", func() bool {
		st, err := readStat(fmt.Sprintf("/proc/%d", plain.Process.Pid))
		return err == nil && st.comm == "sleep"
	})
	const agent = "+net_admin,+sys_admin,+sys_ptrace,+dac_read_search"
	for _, tc := range []struct {
		caps       string
		target     *exec.Cmd
		wantErrors []string // the fields that cannot be read
	}{
		{agent, other, nil},
		{"+net_admin,+sys_admin,+sys_ptrace", other, []string{"fd"}},
		{"+net_admin,+sys_admin,+dac_read_search", other, []string{"exe", "cwd", "fd"}},
		{agent, rootful, nil},
		{"+net_admin,+sys_admin,+dac_read_search", rootful, []string{"exe", "cwd", "fd"}},
		{"+net_admin,+sys_admin,+dac_read_search", plain, nil},
		{agent, hidden, nil},
		{"+net_admin,+sys_admin,+dac_read_search", hidden, []string{"exe", "cwd", "fd"}},
	} {
		pid := tc.target.Process.Pid
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
			t.Errorf("%v with %s: errors %q; want errors for %q", tc.target.Args, tc.caps, procs[0].Errors, tc.wantErrors)
		}
		if p := procs[0]; p.PPID != os.Getpid() || len(p.Cmdline) < 2 || p.Cmdline[1] != tc.target.Args[len(tc.target.Args)-1] {
			t.Errorf("%v with %s: ppid %d cmdline %q; want %d and its arguments (stat and cmdline need nothing)", tc.target.Args, tc.caps, p.PPID, p.Cmdline, os.Getpid())
		}
	}
}
